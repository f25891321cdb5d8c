"""The world calibration's figures come from these functions (benchmarks/world_clip.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _world_clip():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("world_clip_bench", ROOT / "benchmarks/world_clip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variance_outside_span_sees_what_the_concepts_do_not_span() -> None:
    wc = _world_clip()
    rng = np.random.default_rng(0)
    concepts = np.eye(8)[:4] + 0.01 * rng.standard_normal((4, 8))  # span the first 4 axes
    inside = np.concatenate([rng.standard_normal((500, 4)), np.zeros((500, 4))], axis=1)
    half = np.concatenate([rng.standard_normal((500, 4)), rng.standard_normal((500, 4))], axis=1)
    assert wc.variance_outside_span(inside, concepts)["share"] < 0.05
    out = wc.variance_outside_span(half, concepts)
    assert 0.25 < out["share"] < 0.75 and out["span_rank"] == 4


def test_pixel_variance_share_is_the_between_group_share() -> None:
    wc = _world_clip()
    rng = np.random.default_rng(0)
    groups = rng.integers(2, size=400)
    level = np.where(groups[:, None, None, None] == 1, 200, 50)
    images = (level + rng.integers(0, 3, (400, 4, 4, 3))).astype(np.uint8)
    noise = [str(v) for v in rng.integers(2, size=400)]
    share = wc.pixel_variance_share(images, {"g": [str(g) for g in groups], "noise": noise})
    assert share["g"] > 0.95 and share["noise"] < 0.05
