"""Concept contribution bars and cluster concept profiles with example image grids.

Figures are built with matplotlib's object API and the Agg canvas, never pyplot, so plotting
works headless and does not change a user's global backend. Files are written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ceir_sdk.atomic import atomic_write_bytes
from ceir_sdk.errors import BadInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ceir_sdk.model.cluster import ClusterResult
    from ceir_sdk.model.explain import Explanation

POSITIVE, NEGATIVE = "#2a7ab0", "#c8553d"


def _new_figure(**options: Any) -> Figure:
    """A matplotlib Figure, or a clear error where matplotlib (an extra) is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise BadInputError("PNG plots need matplotlib, which a deployment leaves out: "
                            "pip install 'ceir-sdk[report]' (or leave out --out-dir)") from exc
    return Figure(**options)


def _save(fig: Figure, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    out = Path(path)
    atomic_write_bytes(out, buf.getvalue())
    return out


def _as_image(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC
    return arr


def plot_explanation(
    explanation: Explanation, path: str | Path, *, image: Any = None, k: int = 10, title: str | None = None
) -> Path:
    """Horizontal bars of the k largest |contributions|; absent concepts read "NOT ..."."""
    items = explanation.labelled(k)[::-1]
    fig = _new_figure(figsize=(9 if image is not None else 7, 0.35 * len(items) + 1.6))
    if image is not None:
        grid = fig.add_gridspec(1, 2, width_ratios=[1, 2.6])
        ax_img = fig.add_subplot(grid[0, 0])
        ax_img.imshow(_as_image(image))
        ax_img.set_axis_off()
        ax = fig.add_subplot(grid[0, 1])
    else:
        ax = fig.add_subplot(1, 1, 1)
    values = [v for _, v in items]
    ax.barh(range(len(items)), values, color=[POSITIVE if v >= 0 else NEGATIVE for v in values])
    ax.set_yticks(range(len(items)), [t for t, _ in items])
    ax.axvline(0.0, color="black", linewidth=0.8)
    diff = explanation.output - explanation.baseline_output
    ax.set_xlabel(f"contribution (sum of all {len(explanation.concepts)} = {diff:.3f}; {explanation.target})",
                  fontsize=8)
    ax.set_title(title or "concept contributions (integrated gradients)", fontsize=10)
    return _save(fig, path)


def plot_clusters(
    result: ClusterResult,
    path: str | Path,
    *,
    images: Sequence[Any] | np.ndarray | None = None,
    n_concepts: int = 5,
    n_examples: int = 6,
    max_clusters: int = 20,
    seed: int = 0,
) -> Path:
    """One row per cluster: its dominant concepts (lift over all images) and example images."""
    k = min(result.k, max_clusters)
    has_images = images is not None and len(images) > 0
    cols = 1 + (n_examples if has_images else 0)
    fig = _new_figure(figsize=(4.5 + 1.1 * (cols - 1), 1.5 * k + 0.5))
    grid = fig.add_gridspec(k, cols, width_ratios=[4.0] + [1.0] * (cols - 1), hspace=0.5, wspace=0.05)
    rng = np.random.default_rng(seed)
    for row in range(k):
        ax = fig.add_subplot(grid[row, 0])
        names = result.names[row][:n_concepts][::-1]
        ax.barh(range(len(names)), [s for _, s in names], color=POSITIVE)
        ax.set_yticks(range(len(names)), [c for c, _ in names], fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
        ax.set_title(f"cluster {row} ({result.sizes[row]} images)", fontsize=8, loc="left")
        if not has_images:
            continue
        assert images is not None
        members = np.flatnonzero(result.labels == row)
        chosen = rng.choice(members, size=min(n_examples, len(members)), replace=False)
        for j in range(n_examples):
            ax_img = fig.add_subplot(grid[row, 1 + j])
            ax_img.set_axis_off()
            if j < len(chosen):
                ax_img.imshow(_as_image(images[int(chosen[j])]))
    if result.k > k:
        fig.suptitle(f"first {k} of {result.k} clusters", fontsize=9)
    return _save(fig, path)
