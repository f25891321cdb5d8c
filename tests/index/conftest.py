"""Small synthetic collections with known concepts for the index tests."""

from __future__ import annotations

import numpy as np
import pytest
from index_helpers import CONCEPTS, item_vectors  # noqa: F401 - re-exported for fixtures


@pytest.fixture
def collection() -> dict[str, object]:
    """600 items in 3 groups; a group's latent and activations share a pattern."""
    rng = np.random.default_rng(0)
    n, dim = 600, 16
    group = np.arange(n) % 3
    acts = rng.normal(0, 1, size=(n, len(CONCEPTS))).astype(np.float32)
    acts[:, 0] += np.where(group == 0, 2.0, -1.0)  # group 0: striped
    acts[:, 1] += np.where(group == 1, 2.0, -1.0)  # group 1: water
    acts[:, 2] += np.where(group == 2, 2.0, -1.0)  # group 2: grass
    proj = rng.normal(size=(len(CONCEPTS), dim)).astype(np.float32)
    lat = acts @ proj + 0.05 * rng.normal(size=(n, dim)).astype(np.float32)
    meta = [{"key": f"img{i}", "path": f"/data/{i}.png", "split": "test" if i % 2 else "train", "n": i,
             "group": int(group[i])} for i in range(n)]
    return {"latents": lat, "activations": acts, "concepts": CONCEPTS, "metadata": meta, "group": group,
            "proj": proj}
