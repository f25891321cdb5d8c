"""Figures for the report, rendered to PNG bytes with matplotlib's Agg backend."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _to_png(fig: Any) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def contribution_bars(top: Sequence[dict[str, Any]], title: str) -> bytes:
    """Horizontal bars of signed concept contributions (positive right, negative left)."""
    plt = _pyplot()
    names = [t["concept"] for t in top][::-1]
    values = np.array([t["contribution"] for t in top], dtype=float)[::-1]
    fig, ax = plt.subplots(figsize=(5.2, 0.32 * len(names) + 0.9))
    colors = ["#3b6fd8" if v >= 0 else "#d8623b" for v in values]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_xlabel("contribution to the latent (integrated gradients)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    return _to_png(fig)


def cluster_profiles(clusters: Sequence[dict[str, Any]], concepts_z: np.ndarray, labels: np.ndarray,
                     concepts: Sequence[str], top: int = 3) -> bytes:
    """Heatmap: mean z-scored activation of each cluster's dominant concepts, per cluster."""
    plt = _pyplot()
    chosen: list[str] = []
    for cluster in clusters:
        for item in cluster["top_concepts"][:top]:
            if item["concept"] not in chosen:
                chosen.append(item["concept"])
    index = {c: i for i, c in enumerate(concepts)}
    columns = [index[c] for c in chosen]
    matrix = np.zeros((len(clusters), len(columns)))
    for row, cluster in enumerate(clusters):
        members = concepts_z[labels == cluster["cluster"]]
        if len(members):
            matrix[row] = members[:, columns].mean(axis=0)
    fig, ax = plt.subplots(figsize=(0.34 * len(columns) + 2.6, 0.36 * len(clusters) + 1.6))
    limit = float(np.abs(matrix).max()) or 1.0
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(columns)), chosen, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(
        range(len(clusters)), [f"{c['cluster']}: {c.get('majority_class') or ''}" for c in clusters], fontsize=7
    )
    ax.set_title("cluster concept profiles (mean z-scored activation)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _to_png(fig)


def metric_bars(metrics: dict[str, dict[str, float]]) -> bytes:
    """NMI / ACC / ARI of each representation with their standard deviation over seeds."""
    plt = _pyplot()
    spaces = list(metrics)
    keys = ["nmi", "acc", "ari"]
    fig, ax = plt.subplots(figsize=(5.6, 2.8))
    width = 0.8 / len(spaces)
    for i, space in enumerate(spaces):
        means = [metrics[space][f"{k}_mean"] for k in keys]
        stds = [metrics[space][f"{k}_std"] for k in keys]
        ax.bar(np.arange(3) + i * width, means, width, yerr=stds, label=space, capsize=2)
    ax.set_xticks(np.arange(3) + width * (len(spaces) - 1) / 2, [k.upper() for k in keys])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("clustering quality (k = number of classes)", fontsize=9)
    return _to_png(fig)
