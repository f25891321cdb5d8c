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

#: Words that say nothing about what a phrase names ("a tree" and "a house" share only "a").
_ARTICLES = frozenset({"a", "an", "the"})

#: The families whose values describe the item itself; an edit keeps the others of these fixed.
_FEATURE_FAMILIES = ("colour", "pattern", "shape", "size")


def _words(phrase: str) -> frozenset[str]:
    return frozenset(phrase.split()) - _ARTICLES


def _related(a: str, b: str) -> bool:
    """One phrase is the other, or part of it ('red' and 'red dotted'): no query joins them."""
    wa, wb = _words(a), _words(b)
    return a == b or wa <= wb or wb <= wa


def _pick_pair(first: Sequence[str], second: Sequence[str],
               truths: Sequence[frozenset[str]]) -> tuple[str, str] | None:
    """The most frequent pair (one of ``first``, another of ``second``) present in under half the
    items, else the most frequent; None when no such pair is ever true together. Two names of the
    same concept never pair (a query naming one concept twice is refused)."""
    pairs: Counter[tuple[str, str]] = Counter()
    for truth in truths:
        pairs.update((a, b) for a in first if a in truth for b in second
                     if b in truth and not _related(a, b))
    if not pairs:
        return None
    n = len(truths)
    for (a, b), count in pairs.most_common():
        if count < 0.5 * n:
            return a, b
    return pairs.most_common(1)[0][0]


def _most_common(family: Sequence[str], truths: Sequence[frozenset[str]], exclude: set[str]) -> str | None:
    counts = Counter(c for t in truths for c in t if c in family and c not in exclude)
    return counts.most_common(1)[0][0] if counts else None


def _choose_pair(family: Mapping[str, Sequence[str]], scorable: Sequence[str], family_of: Mapping[str, str],
                 truths: Sequence[frozenset[str]]) -> tuple[str, str] | None:
    """A colour and a pattern that occur together, as the world's own lists give; for other concept
    sets two concepts of different kinds, else any two distinct ones, that the images show together."""
    colours = list(family.get("colour", []))
    patterns = [p for p in family.get("pattern", []) if p != "plain"]
    pair = _pick_pair(colours, patterns, truths) if colours and patterns else None
    if pair is not None:
        return pair
    by_kind = {c: family_of.get(c, c) for c in scorable}  # a description is a kind of its own
    pairs: Counter[tuple[str, str]] = Counter()
    ordered = sorted(scorable)
    for truth in truths:
        present = [c for c in ordered if c in truth]
        pairs.update((a, b) for i, a in enumerate(present) for b in present[i + 1:] if not _related(a, b))
    for wanted in (lambda a, b: by_kind[a] != by_kind[b], lambda a, b: True):
        chosen = Counter({pair: n for pair, n in pairs.items() if wanted(*pair)})
        for (a, b), count in chosen.most_common():
            if count < 0.5 * len(truths):
                return a, b
        if chosen:
            return chosen.most_common(1)[0][0]
    return None


def _choose_exclusion(family: Mapping[str, Sequence[str]], scorable: Sequence[str], pair: tuple[str, str],
                      truths: Sequence[frozenset[str]]) -> str | None:
    """A scene to exclude from the items showing both concepts (for other concept sets: any other
    concept, unrelated to both, that some but not all of those items show)."""
    with_both = [t for t in truths if pair[0] in t and pair[1] in t]
    scenes = [c for c in family.get("scene", []) if c not in pair]
    if scenes:
        return _most_common(scenes, with_both, set())
    combined = f"{pair[0]} {pair[1]}"
    others = [c for c in scorable if c != combined and not any(_related(c, p) for p in pair)]
    counts = Counter(c for t in with_both for c in t if c in others)
    return next((c for c, n in counts.most_common() if n < len(with_both)), None)


def _choose_swap(truth_of: Mapping[int, frozenset[str]], family: Mapping[str, Sequence[str]],
                 scorable: Sequence[str]) -> tuple[int, str, str] | None:
    """Colours, as the world's lists give; for other concept sets the first kind of concept with two
    values among the model's concepts (two shapes, two scenes, two superclasses, ...)."""
    ordered = ["colour", *(name for name in family if name != "colour")]
    for name in ordered:
        members = [c for c in family.get(name, []) if c in scorable and (name != "pattern" or c != "plain")]
        if len(members) < 2:
            continue
        others = [family.get(other, []) for other in _FEATURE_FAMILIES if other != name]
        swap = _pick_swap(truth_of, members, others)
        if swap is not None:
            return swap
    return None


def _pick_swap(truth_of: Mapping[int, frozenset[str]], colours: Sequence[str],
               others: Sequence[Sequence[str]]) -> tuple[int, str, str] | None:
    """(item, its colour, another colour) where the other colour is common among items that
    share all the item's other attributes (pattern, shape, size), so the edited query has
    something to find: a green striped large oval -> a black striped large oval. None when no
    item shows any of the colours."""

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
        return None
    return best[1], best[2], best[3]


def _replace_phrase(phrase: str, old: str, new: str) -> str | None:
    """``phrase`` with the words of ``old`` (a run of whole words) replaced by ``new``; None when
    ``phrase`` does not name ``old``: 'red dotted' -> 'blue dotted', 'a tree' in 'near a tree'."""
    words, run = phrase.split(), old.split()
    for i in range(len(words) - len(run) + 1):
        if words[i:i + len(run)] == run:
            return " ".join([*words[:i], *new.split(), *words[i + len(run):]])
    return None


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
    """The three queries, each scored against the true concepts. Queries are built from the
    model's concepts that the world marks on its images (the only ones that can be scored); a
    query that cannot be built from them is ``{"skipped": why}`` instead of its results."""
    known = set(concepts)
    family = {name: [c for c in members if c in known] for name, members in families.items()}
    family_of = {c: name for name, members in families.items() for c in members}
    seen = frozenset().union(*truths) if truths else frozenset()
    scorable = [c for c in concepts if c in seen]
    truth_of = {int(i): truths[int(i)] for i in index.ids}
    what = (f"{len(scorable)} of the model's {len(concepts)} concepts are among the world's true concepts"
            + (f" ({', '.join(scorable[:10])}{', ...' if len(scorable) > 10 else ''})" if scorable else ""))
    out: dict[str, Any] = {}

    pair = _choose_pair(family, scorable, family_of, truths)
    if pair is None:
        why = (f"needs two of the model's concepts that the test images' true concepts show together; {what}. "
               "Use a concept source whose phrases name the world's colours, patterns, shapes or scenes")
        out["text"] = {"skipped": f"the text query {why}"}
        out["concept_expression"] = {"skipped": f"the concept expression {why}"}
    else:
        first, second = pair
        text = f"{first} {second}"
        text_hits = index.search_text(text, k=k)[0]
        text_both = float(np.mean([first in truth_of[h.id] and second in truth_of[h.id] for h in text_hits]))
        out["text"] = {"query": text, "share_with_both_concepts": text_both, "hits": _describe(text_hits)}

        excluded = _choose_exclusion(family, scorable, pair, truths)
        # A description ("yellow striped") is one concept when the model has it; else both parts.
        wanted = f"+{first} {second}" if f"{first} {second}" in known else f"+{first} +{second}"
        expression = wanted + (f" -{excluded}" if excluded else "")
        query = index.parse(expression)
        expr_hits = index.search_concepts(query, k=k)
        expr_precision = (float(np.mean([query.satisfied_by(truth_of[h.id]) for h in expr_hits]))
                          if expr_hits else 0.0)
        out["concept_expression"] = {"query": expression, "precision_at_k": expr_precision,
                                     "hits": _describe(expr_hits)}

    # Label manipulation: swap an item's colour for another one that the data shows with the
    # same pattern and shape (see _pick_swap), in every phrase.
    swap = _choose_swap(truth_of, family, scorable)
    if swap is None:
        out["edited_example"] = {"skipped": (
            "the edited example needs two of the model's concepts of one kind (two colours, two shapes, two "
            f"scenes, ...) that the test images' true concepts show; {what}")}
    else:
        example, old, new = swap
        removed = [c for c in concepts if _replace_phrase(c, old, "") is not None]
        swapped = [str(_replace_phrase(c, old, new)) for c in removed if c != old]
        added = [new] + [c for c in swapped if c in known]
        plain_hits = index.search_like(example, k=k)
        edited_hits = index.search_like(example, k=k, add=added, remove=removed)

        def share(hits: Sequence[Any], concept: str) -> float:
            return float(np.mean([concept in truth_of[h.id] for h in hits])) if hits else 0.0

        out["edited_example"] = {
            "item": example,
            "item_class": class_names[int(labels[example])],
            "item_true_concepts": sorted(truths[example]),
            "edit": {"remove": [old], "add": [new], "phrases_removed": removed, "phrases_added": added},
            "before": {"share_removed": share(plain_hits, old), "share_added": share(plain_hits, new),
                       "hits": _describe(plain_hits)},
            "after": {"share_removed": share(edited_hits, old), "share_added": share(edited_hits, new),
                      "hits": _describe(edited_hits)},
        }
    out["k"] = k
    return out
