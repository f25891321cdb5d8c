"""Clustering scores: NMI, ACC (Hungarian matching) and ARI. numpy, plus scipy for ACC.

scipy is an extra (``ceir-sdk[report]``, also in ``[train]``): a deployment does not score
clusterings, so it does not install scipy's 140 MB.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ceir_sdk.errors import BadInputError


def contingency(labels_true: ArrayLike, labels_pred: ArrayLike) -> NDArray[np.int64]:
    """Counts table: rows are true classes, columns predicted clusters (both re-indexed)."""
    t = np.asarray(labels_true).ravel()
    p = np.asarray(labels_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"label arrays differ in length: {t.shape} vs {p.shape}")
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    table = np.zeros((int(ti.max(initial=-1)) + 1, int(pi.max(initial=-1)) + 1), dtype=np.int64)
    np.add.at(table, (ti, pi), 1)
    return table


def clustering_accuracy(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """Best one-to-one matching of clusters to classes (Hungarian), as a fraction correct."""
    table = contingency(labels_true, labels_pred)
    if table.sum() == 0:
        return 0.0
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as exc:
        raise BadInputError("clustering accuracy needs scipy (the Hungarian matching): "
                            "pip install 'ceir-sdk[report]'") from exc
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: NDArray[np.float64]) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """NMI with the arithmetic-mean normalisation (sklearn's default)."""
    table = contingency(labels_true, labels_pred).astype(np.float64)
    n = table.sum()
    if n == 0:
        return 0.0
    h_true, h_pred = _entropy(table.sum(1)), _entropy(table.sum(0))
    if h_true == 0.0 and h_pred == 0.0:
        return 1.0  # both a single cluster: identical partitions
    pij = table / n
    outer = np.outer(table.sum(1), table.sum(0)) / (n * n)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / outer[nz])).sum())
    denom = (h_true + h_pred) / 2.0
    return max(0.0, mi / denom) if denom > 0 else 0.0


def adjusted_rand_index(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    table = contingency(labels_true, labels_pred).astype(np.float64)
    n = table.sum()

    def pairs(x: NDArray[np.float64]) -> float:
        return float((x * (x - 1) / 2).sum())

    sum_ij = pairs(table)
    sum_a, sum_b = pairs(table.sum(1)), pairs(table.sum(0))
    total = n * (n - 1) / 2
    if total == 0:
        return 1.0
    expected = sum_a * sum_b / total
    max_index = (sum_a + sum_b) / 2
    if max_index == expected:
        return 1.0  # degenerate: both partitions trivial
    return float((sum_ij - expected) / (max_index - expected))


def clustering_scores(labels_true: ArrayLike, labels_pred: ArrayLike) -> dict[str, float]:
    """{"nmi", "acc", "ari"} for a predicted clustering against true labels."""
    return {
        "nmi": normalized_mutual_info(labels_true, labels_pred),
        "acc": clustering_accuracy(labels_true, labels_pred),
        "ari": adjusted_rand_index(labels_true, labels_pred),
    }
