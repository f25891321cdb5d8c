"""What an index hands back: search hits, clusters, and the shards a large build is fed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Hit:
    """One result: the item, its score (higher is better) and the concepts behind the match.

    Concept-expression hits also say whether the item ``matched`` (every + concept present,
    every - concept absent), which rule decided presence (``presence``: "calibrated", i.e.
    P(present) >= 0.5, or "threshold", i.e. z above the threshold) and, per term
    (``terms``), its z-score, calibrated P(present) (None without a calibration), whether
    the concept counts as ``present`` under that rule, and whether the term is ``met``
    (None for unsigned terms). ``matched`` is exactly "every signed term met".
    """

    id: int
    score: float
    concepts: list[tuple[str, float]]
    key: str | None = None
    path: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    matched: bool | None = None
    terms: list[dict[str, Any]] = field(default_factory=list)
    presence: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "score": self.score, "key": self.key, "path": self.path,
               "fields": self.fields, "concepts": [[c, v] for c, v in self.concepts]}
        if self.matched is not None:
            out["matched"] = self.matched
            out["presence"] = self.presence
            out["terms"] = self.terms
        return out


@dataclass
class IndexClusters:
    """k-means over an index: per-item assignment and concept names per cluster."""

    ids: np.ndarray
    assignment: np.ndarray
    centroids: np.ndarray
    names: list[str]
    top_concepts: list[list[tuple[str, float]]]

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.assignment, minlength=len(self.names)).tolist()

    def as_dict(self) -> dict[str, Any]:
        return {"k": len(self.names), "clusters": [
            {"cluster": c, "name": self.names[c], "size": self.sizes[c],
             "concepts": [[n, v] for n, v in self.top_concepts[c]]} for c in range(len(self.names))]}


@dataclass
class Shard:
    """A piece of a large collection: latents, optional activations, ids and metadata."""

    latents: np.ndarray
    activations: np.ndarray | None = None
    ids: np.ndarray | None = None
    metadata: Sequence[Mapping[str, Any]] | None = None
