"""The three query kinds of the demo, scored against the world's true concepts.

Queries are chosen from the data so they are selective and readable: a colour and a pattern
that often occur together (but not everywhere), a scene to exclude, and an edit that swaps an
item's colour for another colour, CEIR's "label manipulation".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _pick_pair(first: Sequence[str], second: Sequence[str], truths: Sequence[frozenset[str]]) -> tuple[str, str]:
    """The most frequent (first-family, second-family) pair present in under half the items."""
    pairs: Counter[tuple[str, str]] = Counter()
    for truth in truths:
        pairs.update((a, b) for a in first if a in truth for b in second if b in truth)
    n = len(truths)
    for (a, b), count in pairs.most_common():
        if count < 0.5 * n:
            return a, b
    return pairs.most_common(1)[0][0]


def _most_common(family: Sequence[str], truths: Sequence[frozenset[str]], exclude: set[str]) -> str:
    counts = Counter(c for t in truths for c in t if c in family and c not in exclude)
    return counts.most_common(1)[0][0]


def _pick_swap(truth_of: Mapping[int, frozenset[str]], colours: Sequence[str],
               others: Sequence[Sequence[str]]) -> tuple[int, str, str]:
    """(item, its colour, another colour) where the other colour is common among items that
    share all the item's other attributes (pattern, shape, size), so the edited query has
    something to find: a green striped large oval -> a black striped large oval."""

    def signature(truth: frozenset[str]) -> tuple[str, ...]:
        return tuple(next((v for v in family if v in truth), "") for family in others)

    combos: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for truth in truth_of.values():
        combos.update((c, signature(truth)) for c in colours if c in truth)
    best: tuple[int, int, str, str] | None = None
    for item in sorted(truth_of)[:500]:
        truth = truth_of[item]
        sig = signature(truth)
        for old in (c for c in colours if c in truth):
            for new in colours:
                if new != old and (best is None or combos[(new, sig)] > best[0]):
                    best = (combos[(new, sig)], item, old, new)
    if best is None:
        first = sorted(truth_of)[0]
        return first, colours[0], colours[-1]
    return best[1], best[2], best[3]


def _describe(hits: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": int(hit.id),
            "score": round(float(hit.score), 4),
            "class": (hit.fields or {}).get("class"),
            "explained_by": [[c, round(float(v), 3)] for c, v in hit.concepts[:4]],
        }
        for hit in hits
    ]


def run_queries(index: Any, concepts: Sequence[str], class_names: Sequence[str], labels: np.ndarray,
                truths: Sequence[frozenset[str]], families: Mapping[str, Sequence[str]], k: int = 10) -> dict[str, Any]:
    known = set(concepts)
    family = {name: [c for c in members if c in known] for name, members in families.items()}
    colours = family.get("colour") or sorted(known)
    patterns = [p for p in family.get("pattern", []) if p != "plain"] or sorted(known)
    scenes = family.get("scene") or sorted(known)
    truth_of = {int(i): truths[int(i)] for i in index.ids}

    colour, pattern = _pick_pair(colours, patterns, truths)
    text = f"{colour} {pattern}"
    text_hits = index.search_text(text, k=k)[0]
    text_both = float(np.mean([colour in truth_of[h.id] and pattern in truth_of[h.id] for h in text_hits]))

    scene = _most_common(scenes, [t for t in truths if colour in t and pattern in t], set()) if scenes else ""
    # A description ("yellow striped") is one concept when the model has it; else both parts.
    wanted = f"+{colour} {pattern}" if f"{colour} {pattern}" in known else f"+{colour} +{pattern}"
    expression = wanted + (f" -{scene}" if scene else "")
    query = index.parse(expression)
    expr_hits = index.search_concepts(query, k=k)
    expr_precision = float(np.mean([query.satisfied_by(truth_of[h.id]) for h in expr_hits])) if expr_hits else 0.0

    # Label manipulation: swap an item's colour for another one that the data shows with the
    # same pattern and shape (see _pick_swap), in every phrase.
    others = [family.get(name, []) for name in ("pattern", "shape", "size")]
    example, old, new = _pick_swap(truth_of, colours, others)
    removed = [c for c in concepts if old in c.split()]
    swapped = [" ".join(new if word == old else word for word in c.split()) for c in removed if c != old]
    added = [new] + [c for c in swapped if c in known]
    plain_hits = index.search_like(example, k=k)
    edited_hits = index.search_like(example, k=k, add=added, remove=removed)
    colour, new_colour = old, new

    def share(hits: Sequence[Any], concept: str) -> float:
        return float(np.mean([concept in truth_of[h.id] for h in hits])) if hits else 0.0

    return {
        "text": {"query": text, "share_with_both_concepts": text_both, "hits": _describe(text_hits)},
        "concept_expression": {"query": expression, "precision_at_k": expr_precision, "hits": _describe(expr_hits)},
        "edited_example": {
            "item": example,
            "item_class": class_names[int(labels[example])],
            "item_true_concepts": sorted(truths[example]),
            "edit": {"remove": [colour], "add": [new_colour], "phrases_removed": removed, "phrases_added": added},
            "before": {"share_removed": share(plain_hits, colour), "share_added": share(plain_hits, new_colour),
                       "hits": _describe(plain_hits)},
            "after": {"share_removed": share(edited_hits, colour), "share_added": share(edited_hits, new_colour),
                      "hits": _describe(edited_hits)},
        },
        "k": k,
    }
