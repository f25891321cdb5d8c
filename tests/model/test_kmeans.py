"""k-means: k-means++ seeding, restarts, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from ceir_sdk.errors import BadInputError
from ceir_sdk.metrics import clustering_scores
from ceir_sdk.model.cluster import kmeans, kmeans_plus_plus


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Twelve tight blobs of unequal sizes: uniform seeding often puts two seeds in the large ones."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(12, 8))
    sizes = rng.integers(20, 400, size=12)
    x = np.concatenate([c + rng.normal(scale=0.3, size=(n, 8)) for c, n in zip(centres, sizes)])
    y = np.repeat(np.arange(12), sizes)
    return x.astype(np.float32), y


def test_single_run_recovers_separated_blobs_for_every_seed() -> None:
    x, y = _blobs()
    for seed in range(8):
        labels, centroids, inertia = kmeans(x, 12, restarts=1, seed=seed)
        assert clustering_scores(y, labels)["acc"] == pytest.approx(1.0), f"seed {seed}"
        assert centroids.shape == (12, 8) and inertia > 0


def test_restarts_never_raise_inertia_and_seed_fixes_result() -> None:
    x, _ = _blobs(1)
    x = x + np.random.default_rng(3).normal(scale=4.0, size=x.shape).astype(np.float32)  # overlapping now
    one = kmeans(x, 12, restarts=1, seed=5)[2]
    many = kmeans(x, 12, restarts=8, seed=5)
    assert many[2] <= one + 1e-3
    again = kmeans(x, 12, restarts=8, seed=5)
    np.testing.assert_array_equal(many[0], again[0])


def test_plus_plus_seeds_are_distinct_rows_of_the_data() -> None:
    x, _ = _blobs(2)
    seeds = kmeans_plus_plus(x, 12, np.random.default_rng(0))
    assert seeds.shape == (12, 8)
    rows = {tuple(r) for r in x}
    assert all(tuple(s) in rows for s in seeds)
    assert len({tuple(s) for s in seeds}) == 12


def test_plus_plus_copes_with_fewer_distinct_points_than_clusters() -> None:
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    labels, _, inertia = kmeans(x, 5, restarts=2, seed=0)
    assert inertia == pytest.approx(0.0, abs=1e-3)
    assert len(np.unique(labels)) >= 3


def test_refuses_non_finite_input_and_too_few_rows() -> None:
    x, _ = _blobs()
    x[3, 2] = np.nan
    with pytest.raises(BadInputError, match="NaN"):
        kmeans(x, 4)
    with pytest.raises(BadInputError, match="at least 5 images"):
        kmeans(np.zeros((3, 2), np.float32), 5)
