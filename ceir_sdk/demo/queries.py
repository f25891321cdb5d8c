"""The three query kinds of the demo, scored against the world's true concepts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np


def _frequent_pair(concepts: Sequence[str], truths: Sequence[frozenset[str]]) -> tuple[str, str]:
    """Two model concepts that often occur together, but not everywhere (a selective query)."""
    known = set(concepts)
    single = Counter(c for t in truths for c in t if c in known)
    pairs: Counter[tuple[str, str]] = Counter()
    for truth in truths:
        present = sorted(c for c in truth if c in known)
        pairs.update(combinations(present, 2))
    n = len(truths)
    for (a, b), count in pairs.most_common():
        if count >= 20 and single[a] < 0.5 * n and single[b] < 0.5 * n:
            return a, b
    a, b = pairs.most_common(1)[0][0]
    return a, b


def _common_other(concepts: Sequence[str], truths: Sequence[frozenset[str]], exclude: set[str]) -> str:
    known = set(concepts) - exclude
    counts = Counter(c for t in truths for c in t if c in known)
    return counts.most_common(1)[0][0]


def _describe(hits: Sequence[Any], class_names: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for hit in hits:
        fields = hit.fields or {}
        rows.append({
            "id": int(hit.id),
            "score": round(float(hit.score), 4),
            "class": fields.get("class"),
            "explained_by": [[c, round(float(v), 3)] for c, v in hit.concepts[:4]],
        })
    return rows


def run_queries(index: Any, concepts: Sequence[str], class_names: Sequence[str], labels: np.ndarray,
                truths: Sequence[frozenset[str]], k: int = 10) -> dict[str, Any]:
    a, b = _frequent_pair(concepts, truths)
    other = _common_other(concepts, truths, {a, b})
    truth_of = {int(i): truths[int(i)] for i in index.ids}

    text = f"{a} {b}"
    text_hits = index.search_text(text, k=k)[0]
    text_share = float(np.mean([a in truth_of[h.id] or b in truth_of[h.id] for h in text_hits]))

    expression = f"+{a} +{b} -{other}"
    expr_hits = index.search_concepts(expression, k=k)
    expr_precision = float(np.mean([
        a in truth_of[h.id] and b in truth_of[h.id] and other not in truth_of[h.id] for h in expr_hits
    ])) if expr_hits else 0.0

    # Label manipulation: an item showing `a`; remove `a`, add `other`, search again.
    example = next((int(i) for i in index.ids if a in truth_of[int(i)] and other not in truth_of[int(i)]),
                   int(index.ids[0]))
    plain_hits = index.search_like(example, k=k)
    edited_hits = index.search_like(example, k=k, add=[other], remove=[a])

    def share(hits: Sequence[Any], concept: str) -> float:
        return float(np.mean([concept in truth_of[h.id] for h in hits])) if hits else 0.0

    return {
        "text": {"query": text, "share_with_a_query_concept": text_share, "hits": _describe(text_hits, class_names)},
        "concept_expression": {
            "query": expression,
            "precision_at_k": expr_precision,
            "hits": _describe(expr_hits, class_names),
        },
        "edited_example": {
            "item": example,
            "item_class": class_names[int(labels[example])],
            "item_true_concepts": sorted(truths[example]),
            "edit": {"remove": [a], "add": [other]},
            "before": {"share_removed": share(plain_hits, a), "share_added": share(plain_hits, other),
                       "hits": _describe(plain_hits, class_names)},
            "after": {"share_removed": share(edited_hits, a), "share_added": share(edited_hits, other),
                      "hits": _describe(edited_hits, class_names)},
        },
        "k": k,
    }
