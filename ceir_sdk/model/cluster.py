"""k-means on the representation (faiss, several restarts) and cluster naming by concepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError


@dataclass(eq=False)
class ClusterResult:
    labels: np.ndarray  # (N,) int64
    centroids: np.ndarray  # (k, L)
    inertia: float
    names: list[list[tuple[str, float]]] = field(default_factory=list)  # per cluster: dominant concepts
    sizes: list[int] = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.centroids)

    def name(self, cluster: int, n: int = 3) -> str:
        return ", ".join(phrase for phrase, _ in self.names[cluster][:n])

    def as_dict(self, n: int = 5) -> dict[str, Any]:
        return {
            "k": self.k,
            "inertia": self.inertia,
            "clusters": [
                {"cluster": i, "size": self.sizes[i], "name": self.name(i),
                 "concepts": [{"concept": c, "score": s} for c, s in self.names[i][:n]]}
                for i in range(self.k)
            ],
        }


def kmeans(
    x: np.ndarray, k: int, *, restarts: int = 10, seed: int = 0, niter: int = 50
) -> tuple[np.ndarray, np.ndarray, float]:
    """faiss k-means keeping the best of ``restarts`` runs; returns (labels, centroids, inertia)."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise BadInputError(f"k-means needs a 2-D array, got shape {x.shape}")
    if k < 1:
        raise BadInputError(f"the number of clusters must be at least 1, got {k}")
    if len(x) < k:
        raise BadInputError(
            f"cannot form {k} clusters from {len(x)} images: give at least {k} images or ask for "
            f"at most {len(x)} clusters"
        )
    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, nredo=restarts, seed=seed, verbose=False,
        min_points_per_centroid=1, max_points_per_centroid=max(256, len(x) // k + 1),
    )
    km.train(x)
    dist, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64), np.asarray(km.centroids, dtype=np.float32), float(dist.sum())


def name_clusters(
    labels: np.ndarray, concept_z: np.ndarray, concepts: list[str], k: int, top: int = 10
) -> list[list[tuple[str, float]]]:
    """Dominant concepts per cluster: the concepts whose mean activation in the cluster most
    exceeds their mean over all the clustered images (in training standard deviations)."""
    overall = concept_z.mean(axis=0)
    names: list[list[tuple[str, float]]] = []
    for c in range(k):
        members = concept_z[labels == c]
        if len(members) == 0:
            names.append([])
            continue
        lift = members.mean(axis=0) - overall
        order = np.argsort(-lift)[:top]
        names.append([(concepts[i], float(lift[i])) for i in order])
    return names


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid (squared Euclidean) for each row."""
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return d.argmin(axis=1)
