"""scripts/train_world_clip.py: the reused pool of training images and a tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/train_world_clip.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_world_clip", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pool_stream_epochs_flips_and_determinism(script: ModuleType) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    tokens = torch.arange(10).view(10, 1)
    a = list(script.pool_stream(images, tokens, 5, 4, seed=1))
    b = list(script.pool_stream(images, tokens, 5, 4, seed=1))
    assert all(np.array_equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    # the first two batches are one epoch: every pool image exactly once
    first_epoch = torch.cat([a[0][1], a[1][1]]).flatten().tolist()
    assert sorted(first_epoch) == list(range(10))
    flips = 0
    for batch, toks in a:
        for img, t in zip(batch, toks.flatten().tolist(), strict=True):
            original = images[t]
            assert np.array_equal(img, original) or np.array_equal(img, original[:, ::-1])
            flips += int(not np.array_equal(img, original))
        # the pool itself is never modified by a flip
    assert 0 < flips < 20
    assert np.array_equal(images, np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8))


def test_draw_pool_is_the_train_split(script: ModuleType) -> None:
    from ceir_sdk.worlds import World

    images, captions = script.draw_pool(8, seed=0, workers=0, chunk=3)
    assert images.shape == (8, 32, 32, 3) and len(captions) == 8
    w10, w100 = World("world10", 32, 0), World("world100_20", 32, 0)
    assert np.array_equal(images[3], w10.sample(3, "train").image)
    assert captions[4] == w100.sample(0, "train").caption


def test_tiny_training_run_writes_loadable_checkpoint(tmp_path: Path) -> None:
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 4, "head_width": 32},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1},
    }
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # A subprocess: the script registers "ceir-world" with open_clip, which must not leak into this session.
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--config", str(cfg)]
    cmd += ["--steps", "2", "--warmup", "1", "--batch-size", "8", "--pool", "16", "--workers", "0", "--fp16"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    info = json.loads((out / "training_info.json").read_text())
    assert info["device"] == "cpu" and info["steps"] == 2 and info["pool"] == 16
    assert info["architecture"] == config
    assert set(info["load_average"]) == {"mean", "max"}
    check = (
        "import open_clip, sys; open_clip.add_model_config(sys.argv[1]);"
        "m, _, _ = open_clip.create_model_and_transforms('ceir-world', pretrained=sys.argv[2]);"
        "m.eval(); import torch; print(tuple(m.encode_image(torch.zeros(1, 3, 32, 32)).shape))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, str(out / "ceir-world.json"), str(out / "ceir-world.safetensors")],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip().endswith("(1, 16)")
