"""Descriptive, LLM-like concept phrases for a world's classes, with their ground truth.

An LLM asked for "the most important visual features of a ladybug" answers with descriptions
such as "red dotted" or "small round", not only single attributes. These phrases combine a
class's preferred attribute values (size, colour, pattern, shape) the way such answers do, so
the offline concept lists have the size and texture of real ones (about 150 to 200 phrases for
ten classes). Each phrase is true of an image exactly when all of its parts are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations, product
from typing import Any

# The order attributes take in an English description: "small red dotted round".
DESCRIPTION_ORDER = ("size", "colour", "pattern", "shape")


def _by_family(features: Sequence[str], families: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {f: [c for c in features if c in families.get(f, ())] for f in DESCRIPTION_ORDER}


def class_descriptions(world: Any, class_name: str) -> dict[str, frozenset[str]]:
    """Descriptive phrases of one class, each mapped to the atomic concepts it asserts."""
    oracle = world.oracle
    families = oracle.families()
    groups = oracle.class_concepts(class_name)
    by = _by_family(groups["features"], families)
    out: dict[str, frozenset[str]] = {}
    for first, second in combinations(DESCRIPTION_ORDER, 2):
        for a, b in product(by[first], by[second]):
            out[f"{a} {b}"] = frozenset({a, b})
    for colour, pattern, shape in product(by["colour"], by["pattern"], by["shape"]):
        out[f"{colour} {pattern} {shape}"] = frozenset({colour, pattern, shape})
    for superclass in groups["superclasses"]:
        noun = superclass.split(" ", 1)[-1] if superclass.startswith(("a ", "an ")) else superclass
        for shape in by["shape"]:
            out[f"{shape} {noun}"] = frozenset({shape, superclass})
    return out


def description_parts(world: Any, class_names: Sequence[str] | None = None) -> dict[str, frozenset[str]]:
    """All descriptive phrases of the given classes (default: every class) and their parts."""
    parts: dict[str, frozenset[str]] = {}
    names = list(class_names) if class_names is not None else list(world.class_names)
    for name in names:
        parts.update(class_descriptions(world, name))
    return parts


def expand_truth(truth: frozenset[str], parts: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """An image's true concepts plus every descriptive phrase whose parts it all shows."""
    return truth | frozenset(phrase for phrase, needed in parts.items() if needed <= truth)
