"""Evaluate a fitted CEIR model on labelled images: clustering against baselines, cluster
names, explanations. Shared by ``ceir demo`` and ``ceir report``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceir_sdk.metrics import clustering_scores

SPACES = ("ceir", "raw_kmeans", "concept_kmeans")


@dataclass
class Evaluation:
    metrics: dict[str, dict[str, float]]  # space -> {nmi_mean, nmi_std, ...}
    clusters: list[dict[str, Any]]  # the CEIR clustering of the first seed, named by concepts
    cluster_labels: np.ndarray
    explanations: list[dict[str, Any]]
    explained_indices: list[int]
    extras: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "clusters": self.clusters,
            "explanations": self.explanations,
            **self.extras,
        }


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("nmi", "acc", "ari"):
        values = np.array([r[key] for r in runs], dtype=np.float64)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    out["seeds"] = len(runs)
    return out


def evaluate(
    model: Any,
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    seeds: int = 3,
    restarts: int | None = None,
    true_concepts: Sequence[frozenset[str]] | None = None,
    n_explain: int = 4,
    progress: bool = True,
) -> Evaluation:
    """Cluster the CEIR latent, the raw backbone features and the concept activations with
    k = number of classes, over several seeds; name the CEIR clusters; explain a few images."""
    from tqdm.auto import tqdm

    from ceir_sdk.model.cluster import DEFAULT_RESTARTS, kmeans, name_clusters

    restarts = DEFAULT_RESTARTS if restarts is None else restarts

    labels = np.asarray(labels)
    k = len(class_names)
    concepts_z, latent = model.encode_features(features, output="both")
    spaces = {
        "ceir": latent,
        "raw_kmeans": _normalise(np.asarray(features, dtype=np.float32)),
        "concept_kmeans": concepts_z,
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in spaces}
    first_labels: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(spaces) * seeds, desc="clustering (k-means, seeds x spaces)", disable=not progress)
    for seed in range(seeds):
        for name, x in spaces.items():
            assigned, _, _ = kmeans(x, k, restarts=restarts, seed=seed)
            runs[name].append(clustering_scores(labels, assigned))
            first_labels.setdefault(name, assigned)
            bar.update(1)
    bar.close()
    metrics = {name: _summarise(r) for name, r in runs.items()}

    ceir_labels = first_labels["ceir"]
    names = name_clusters(ceir_labels, concepts_z, list(model.concepts), k, present=model.present(concepts_z))
    clusters = []
    for c in range(k):
        members = labels[ceir_labels == c]
        majority, count = Counter(members.tolist()).most_common(1)[0] if len(members) else (-1, 0)
        entry: dict[str, Any] = {
            "cluster": c,
            "size": len(members),
            "name": ", ".join(p for p, _ in names[c][:3]),
            "top_concepts": [{"concept": p, "lift": s} for p, s in names[c][:8]],
            "majority_class": class_names[majority] if majority >= 0 else None,
            "purity": float(count / len(members)) if len(members) else 0.0,
        }
        if true_concepts is not None and len(members) and names[c]:
            in_cluster = [true_concepts[int(i)] for i in np.flatnonzero(ceir_labels == c)]
            freq = Counter(x for s in in_cluster for x in s)
            entry["top_concept_true_share"] = float(freq.get(names[c][0][0], 0) / len(in_cluster))
        clusters.append(entry)

    # One image per class (the first of each), so the explanations span the domain.
    explained: list[int] = []
    for cls in range(k):
        hits = np.flatnonzero(labels == cls)
        if len(hits):
            explained.append(int(hits[0]))
        if len(explained) >= n_explain:
            break
    explanations = []
    if explained:
        for idx, exp in zip(explained, model.explain(features=features[explained], progress=False)):
            item = exp.as_dict(k=8)
            item["index"] = idx
            item["class"] = class_names[int(labels[idx])]
            item["top_present"] = [{"concept": c, "contribution": v} for c, v in exp.top_present(5)]
            if true_concepts is not None:
                truth = true_concepts[int(idx)]
                top5 = [c for c, _ in exp.top_present(5)]
                item["true_concepts"] = sorted(truth)
                item["precision_at_5"] = float(np.mean([c in truth for c in top5])) if top5 else 0.0
            explanations.append(item)
    extras: dict[str, Any] = {}
    precisions = [e["precision_at_5"] for e in explanations if "precision_at_5" in e]
    if precisions:
        extras["explain_precision_at_5"] = float(np.mean(precisions))
    return Evaluation(metrics, clusters, ceir_labels, explanations, explained, extras)
