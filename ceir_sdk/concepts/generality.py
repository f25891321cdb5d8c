"""Prefer the most general concept that carries a phrase's evidence.

CLIP reads a descriptive phrase roughly as the sum of its words: "yellow striped oval" scores
high on every yellow image, striped or not. Ranked by score alone, a cluster of yellow things
is then named "yellow striped oval", which is false of most of its members. A phrase whose
words include another concept's words ("yellow") is replaced by that more general concept when
the general one keeps most of its score: the extra words added little evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

# Words that do not change what a phrase asserts: "a fruit" is as general as "fruit".
FILLER_WORDS = frozenset({"a", "an", "the", "of", "with"})
# A phrase with one of these words denies what its other words name ("without wings", "not
# striped"): it neither needs nor gives way to them.
NEGATING_WORDS = frozenset({"no", "not", "without", "non", "never", "nothing", "lacking", "none"})
# Up to this many content words, subsets are enumerated (2**n lookups); longer phrases are
# compared with every concept instead.
MAX_ENUMERATED_WORDS = 8
# Default share of a phrase's score its more general replacement must keep; chosen on
# development splits carved from the world domains' training images (see name_clusters).
DEFAULT_KEEP = 0.5


def content_words(phrase: str) -> frozenset[str]:
    """The words of a phrase that carry meaning, lower-cased, punctuation and fillers dropped."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-'" else " " for ch in phrase.lower())
    return frozenset(w for w in cleaned.split() if w not in FILLER_WORDS)


class GeneralityIndex:
    """Which concepts of a list are strictly more general than a given one (word subsets)."""

    def __init__(self, concepts: Sequence[str]) -> None:
        self.words = [content_words(c) for c in concepts]
        self._by_words: dict[frozenset[str], list[int]] = {}
        for i, words in enumerate(self.words):
            if words:
                self._by_words.setdefault(words, []).append(i)

    def more_general(self, i: int) -> list[int]:
        """Concepts whose content words are a strict, non-empty subset of concept i's (none for
        a negated phrase, see NEGATING_WORDS)."""
        words = sorted(self.words[i])
        if NEGATING_WORDS & self.words[i]:
            return []
        if len(words) > MAX_ENUMERATED_WORDS:
            return [j for j, other in enumerate(self.words) if other and other < self.words[i]]
        found: list[int] = []
        for size in range(1, len(words)):
            for subset in combinations(words, size):
                found.extend(self._by_words.get(frozenset(subset), ()))
        return found

    def generalise(self, i: int, scores: np.ndarray, keep: float = DEFAULT_KEEP) -> int:
        """The most general concept (fewest words; then highest score) more general than i whose
        score is at least ``keep`` times i's; i itself when none is, or when i scores <= 0."""
        if scores[i] <= 0:
            return i
        candidates = [j for j in self.more_general(i) if scores[j] >= keep * scores[i]]
        if not candidates:
            return i
        return min(candidates, key=lambda j: (len(self.words[j]), -float(scores[j])))


def rank_general_first(scores: np.ndarray, index: GeneralityIndex, top: int, keep: float = DEFAULT_KEEP,
                       pool: int | None = None) -> list[int]:
    """Concept indices for naming: by descending score, each replaced by its most general
    stand-in (see ``GeneralityIndex.generalise``), duplicates dropped, at most ``top``.

    A stand-in takes the place of the phrase it replaces, so the list is not sorted by the
    stand-ins' own scores. Sorting it again named world100_20 development clusters with
    concepts true of fewer of their members (0.62 against 0.79 of the majority class).

    ``pool`` bounds how many of the highest-scoring concepts are considered (default 3 * top).
    """
    if top <= 0:
        return []
    order = np.argsort(-scores)[: pool if pool is not None else 3 * top]
    ranked: list[int] = []
    for i in order:
        j = index.generalise(int(i), scores, keep)
        if j not in ranked:
            ranked.append(j)
        if len(ranked) == top:
            break
    return ranked


def presence_requirements(concepts: Sequence[str]) -> list[list[int]]:
    """For each concept, the concepts made of some of its words ("red", "round" for "red dotted
    round"): a description is not shown where one of them is missing.

    Word subsets are not always entailment ("sea lion" and "lion"); models can turn the rule off
    (``CEIRModel.presence_by_parts``). On world development splits the rule raised the share of true
    concepts among an explanation's five strongest present ones from 0.845 to 0.889 (world10)
    and from 0.647 to 0.718 (world100_20): calibrated thresholds alone marked three-word
    descriptions present where they were true only 4% of the time.
    """
    index = GeneralityIndex(concepts)
    return [index.more_general(i) for i in range(len(concepts))]


def consistent_presence(present: np.ndarray, requirements: Sequence[Sequence[int]]) -> np.ndarray:
    """``present`` ((C,) or (N, C) bool) with each concept cleared wherever one of its
    requirements (``presence_requirements``) is absent. Requirements are read from the input,
    so the result does not depend on the order concepts are visited in."""
    present = np.asarray(present, dtype=bool)
    out = present.copy()
    for i, needed in enumerate(requirements):
        if needed:
            out[..., i] &= present[..., list(needed)].all(axis=-1)
    return out


def presence_mask(z: np.ndarray, thresholds: np.ndarray | None,
                  requirements: Sequence[Sequence[int]] | None) -> np.ndarray:
    """Which concepts are shown ((C,) or (N, C) bool): z at or above each concept's threshold
    (z > 0 without thresholds), then ``consistent_presence`` unless ``requirements`` is None."""
    z = np.asarray(z)
    shown = z >= thresholds if thresholds is not None else z > 0
    return np.asarray(shown) if requirements is None else consistent_presence(shown, requirements)
