"""Concepts that explain a match or name a cluster, from z-scored activations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def label(concept: str, value: float) -> str:
    """A concept as a person reads it: "striped" when present, "NOT grass" when absent."""
    return concept if value >= 0 else f"NOT {concept}"


def shared_concepts(
    query: np.ndarray, item: np.ndarray, concepts: Sequence[str], top: int = 5
) -> list[tuple[str, float]]:
    """Concepts both sides agree on, ranked by the product of their z-scored activations.

    A positive product means both show the concept (or both lack it: "NOT grass"), so the
    largest products are what the query and the item have in common.
    """
    prod = query * item
    order = np.argsort(-prod)[:top]
    return [(label(concepts[j], float(item[j])), round(float(prod[j]), 4)) for j in order if prod[j] > 0]


def top_concepts(item: np.ndarray, concepts: Sequence[str], top: int = 5) -> list[tuple[str, float]]:
    """An item's own strongest concepts (largest |z|), signed."""
    order = np.argsort(-np.abs(item))[:top]
    return [(label(concepts[j], float(item[j])), round(float(item[j]), 4)) for j in order]


def name_clusters(activations: np.ndarray, assignment: np.ndarray, k: int, concepts: Sequence[str],
                  top: int = 3) -> tuple[list[str], list[list[tuple[str, float]]]]:
    """Name each cluster by the concepts whose mean activation most exceeds the overall mean.

    Scores are standardised mean differences (cluster mean minus overall mean, in units of
    the overall standard deviation), so both present and absent concepts can name a
    cluster; names prefer present concepts, as a person would, and a description gives way to
    the general concept behind it, as CEIRModel.cluster's names do (ceir_sdk.concepts.generality).
    """
    from ceir_sdk.concepts.generality import GeneralityIndex, rank_general_first

    general = GeneralityIndex(concepts)
    mu = activations.mean(axis=0)
    sd = activations.std(axis=0) + 1e-6
    names: list[str] = []
    tops: list[list[tuple[str, float]]] = []
    for c in range(k):
        members = activations[assignment == c]
        if len(members) == 0:
            names.append(f"cluster {c} (empty)")
            tops.append([])
            continue
        diff = (members.mean(axis=0) - mu) / sd
        order = np.argsort(-np.abs(diff))[: max(top * 3, top)]
        ranked = [(label(concepts[j], float(diff[j])), round(float(diff[j]), 4)) for j in order]
        tops.append(ranked[:top * 2])
        positive = [concepts[j] for j in rank_general_first(diff, general, top) if diff[j] > 0]
        names.append(", ".join(positive or [name for name, _ in ranked[:top]]))
    return names, tops
