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
    # two captions per image; token value = 10 * image + caption
    tokens = (torch.arange(10) * 10).view(10, 1, 1) + torch.arange(2).view(1, 2, 1)
    a = list(script.pool_stream(images, tokens, 5, 8, seed=1))
    b = list(script.pool_stream(images, tokens, 5, 8, seed=1))
    assert all(np.array_equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    # the first two batches are one epoch: every pool image exactly once
    first_epoch = (torch.cat([a[0][1], a[1][1]]).flatten() // 10).tolist()
    assert sorted(first_epoch) == list(range(10))
    flips, captions_used = 0, set()
    for batch, toks, negatives in a:
        assert negatives is None
        for img, t in zip(batch, toks.flatten().tolist(), strict=True):
            original = images[t // 10]
            captions_used.add(t % 10)
            assert np.array_equal(img, original) or np.array_equal(img, original[:, ::-1])
            flips += int(not np.array_equal(img, original))
    assert 0 < flips < 40
    assert captions_used == {0, 1}  # each image's captions are all drawn over the epochs
    # the pool itself is never modified by a flip
    assert np.array_equal(images, np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8))


def test_pool_stream_keeps_negatives_with_their_captions(script: ModuleType) -> None:
    images = np.zeros((6, 4, 4, 3), dtype=np.uint8)
    tokens = (torch.arange(6) * 10).view(6, 1, 1) + torch.arange(3).view(1, 3, 1)
    negatives = (tokens + 1000, (tokens[..., 0] % 2 == 0))
    for _, toks, (neg, valid) in script.pool_stream(images, tokens, 3, 6, seed=0, negatives=negatives):
        assert torch.equal(neg, toks + 1000)
        assert torch.equal(valid, toks[:, 0] % 2 == 0)


def test_draw_pool_is_the_train_split_with_true_captions(script: ModuleType) -> None:
    from ceir_sdk.worlds import World
    from ceir_sdk.worlds.vocabulary import FAMILY_VALUES

    images, captions, swapped = script.draw_pool(8, seed=0, workers=0, chunk=3, captions_per_image=3)
    assert images.shape == (8, 32, 32, 3) and len(captions) == len(swapped) == 8
    w10, w100 = World("world10", 32, 0), World("world100_20", 32, 0)
    assert np.array_equal(images[3], w10.sample(3, "train").image)
    assert np.array_equal(images[4], w100.sample(0, "train").image)
    samples = [w10.sample(i, "train") for i in range(4)] + [w100.sample(i, "train") for i in range(4)]
    differing = 0
    for sample, caps, negs in zip(samples, captions, swapped, strict=True):
        assert len(caps) == len(negs) == 3
        assert len(set(caps)) > 1  # several different captions per image
        for cap, neg in zip(caps, negs, strict=True):
            words = set(cap.rstrip(".").replace(",", "").split())
            # a caption only names the image's own attribute values
            for family in ("shape", "colour", "pattern", "size"):
                named = words & set(FAMILY_VALUES[family])
                assert named <= {sample.families[family]}, (cap, family)
            if neg != cap:
                differing += 1
                changed = set(neg.rstrip(".").replace(",", "").split()) - words
                assert len(changed) == 1  # one attribute swapped, the rest word for word
                (word,) = changed
                assert any(word in FAMILY_VALUES[f] and word != sample.families[f] for f in FAMILY_VALUES)
    assert differing > 8


def test_clip_loss_negatives(script: ModuleType) -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(4, 8, generator=gen), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(4, 8, generator=gen), dim=1)
    scale = torch.tensor(10.0)
    plain = script.clip_loss(img, txt, scale)
    masked = script.clip_loss(img, txt, scale, (img.clone(), torch.zeros(4, dtype=torch.bool)))
    assert torch.allclose(plain, masked)  # masked negatives change nothing
    # a valid negative as close to its image as the caption itself must cost something
    harder = script.clip_loss(img, txt, scale, (txt.clone(), torch.ones(4, dtype=torch.bool)))
    assert harder > plain


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
    cmd += ["--captions-per-image", "2", "--swap-negatives"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    info = json.loads((out / "training_info.json").read_text())
    assert info["device"] == "cpu" and info["steps"] == 2 and info["pool"] == 16
    assert info["swap_negatives"] is True and info["captions_per_image"] == 2
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
