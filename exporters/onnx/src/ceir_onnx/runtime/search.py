"""A simple exact nearest-neighbour search in numpy (small collections, no faiss needed).

Anything with ``search(queries, k) -> (scores, indices)`` can stand in for it in the
runtime, e.g. the FAISS-based ``ceir_sdk.index`` for large collections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError

METRICS = ("cosine", "ip", "l2")


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class ExactIndex:
    """Brute-force index; ``search`` returns scores (higher is closer) and row indices."""

    metric: str = "cosine"
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    ids: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise BadInputError(f"unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")

    def add(self, vectors: np.ndarray, ids: Sequence[Any] | None = None) -> ExactIndex:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise BadInputError(f"vectors must be 2-D (N, D); got shape {vectors.shape}")
        if self.vectors.size and vectors.shape[1] != self.vectors.shape[1]:
            raise BadInputError(f"dimension {vectors.shape[1]} != index dimension {self.vectors.shape[1]}")
        start = len(self.ids)
        new_ids = list(ids) if ids is not None else list(range(start, start + len(vectors)))
        if len(new_ids) != len(vectors):
            raise BadInputError(f"{len(new_ids)} ids for {len(vectors)} vectors")
        if self.metric == "cosine":
            vectors = _normalise(vectors)
        self.vectors = vectors if not self.vectors.size else np.concatenate([self.vectors, vectors])
        self.ids.extend(new_ids)
        return self

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        if not len(self):
            raise BadInputError("the index is empty; add vectors first")
        q = np.asarray(queries, dtype=np.float32)
        q = q[None, :] if q.ndim == 1 else q
        if q.shape[1] != self.vectors.shape[1]:
            raise BadInputError(f"query dimension {q.shape[1]} != index dimension {self.vectors.shape[1]}")
        if self.metric == "cosine":
            q = _normalise(q)
        if self.metric == "l2":  # negative squared distance so that higher is closer everywhere
            scores = -(
                (q * q).sum(1, keepdims=True) - 2 * q @ self.vectors.T + (self.vectors**2).sum(1)[None, :]
            )
        else:
            scores = q @ self.vectors.T
        k = min(k, len(self))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return np.take_along_axis(scores, top, axis=1), top
