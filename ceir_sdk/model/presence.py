"""When is a concept present in an image? A per-concept z-score threshold, fitted without labels.

z > 0 only says "above the training mean". Most concepts are absent from most images (a shape
is one of seven), so about half of the images where a concept is absent still sit above its
mean. Each concept's training activations are instead modelled as a mixture of three 1-D
Gaussians (ceir_sdk.index.calibration, the same calibration the index ranks with); the top
component is "present", and the threshold is the lowest z at which P(present) >= 0.5.
On world10 (ceir-world backbone, 10,000 training images, the same 500 test images) this raised
the share of true concepts among an explanation's top five present concepts from 0.795 to 0.843,
and per-concept presence accuracy from 0.61 to 0.93 (benchmarks/cluster.py measures the former).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A 1-D three-component mixture is well determined by a few thousand values; more only costs time.
MAX_ROWS = 4000
# EM to a looser tolerance than the index's calibration (300 iterations, 1e-7): six times faster
# (about 50 ms a concept, which matters at 1,700 concepts), thresholds within about 0.1 z.
MAX_ITER, TOL = 100, 1e-5
METHOD = "3-component Gaussian mixture per concept on training activations; present where P >= 0.5"


def fit_presence_thresholds(z: np.ndarray, concepts: Sequence[str], *, seed: int = 0) -> np.ndarray:
    """(C,) z-scores at and above which each concept counts as present (+inf: never).

    Falls back to 0 (above the mean) for every concept when there are too few rows to fit.
    """
    from ceir_sdk.index.calibration import MIN_ITEMS, PresenceCalibration

    z = np.asarray(z, dtype=np.float32)
    if len(z) < MIN_ITEMS:
        return np.zeros(len(concepts), dtype=np.float32)
    rows = np.random.default_rng(seed).choice(len(z), size=min(MAX_ROWS, len(z)), replace=False)
    calibration = PresenceCalibration.fit(
        z[np.sort(rows)], list(concepts), source="external", seed=seed, max_iter=MAX_ITER, tol=TOL
    )
    return calibration.present_from_z().astype(np.float32)


def thresholds_from_json(values: object, n_concepts: int) -> np.ndarray | None:
    """Thresholds as saved in a model's config.json (None for inf); None when absent or malformed."""
    if not isinstance(values, list) or len(values) != n_concepts:
        return None
    return np.array([np.inf if v is None else float(v) for v in values], dtype=np.float32)
