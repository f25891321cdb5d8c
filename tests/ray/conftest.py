"""Shared set-up for the Ray tests: one local Ray session, one tiny bundle, world images on disk."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")
# Reuse helper D's tiny real open_clip model + CEIR head (tests/onnx/onnx_helpers.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx"))

N_IMAGES = 2000


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local 2-CPU Ray cluster per test module (start-up takes several seconds)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ceir_onnx.export import export_bundle
    from onnx_helpers import tiny_parts

    parts, _ = tiny_parts()
    return export_bundle(parts, tmp_path_factory.mktemp("ray-onnx") / "bundle", progress=False)


@pytest.fixture(scope="session")
def world_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_IMAGES world images as PNG files in two class-like sub-folders."""
    from PIL import Image

    from ceir_sdk.worlds import World

    root = tmp_path_factory.mktemp("world-images")
    world = World("world10", image_size=32, seed=0)
    i = 0
    for batch in world.batches(N_IMAGES, split="train", batch_size=500):
        for img, label in zip(batch.images, batch.labels):
            folder = root / f"class{int(label) % 2}"
            folder.mkdir(exist_ok=True)
            Image.fromarray(img).save(folder / f"img{i:05d}.png")
            i += 1
    return root
