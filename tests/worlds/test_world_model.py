"""The committed ceir-world checkpoint loads through open_clip's own API and sees concepts."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
world_model = pytest.importorskip("ceir_open_clip.world_model")

from ceir_sdk.worlds import World  # noqa: E402


def test_files_present_and_small() -> None:
    assert world_model.WORLD_MODEL_NAME == "ceir-world"
    assert world_model.config_path().is_file()
    ckpt = world_model.checkpoint_path()
    assert ckpt.is_file() and ckpt.suffix == ".safetensors"
    assert ckpt.stat().st_size <= 20 * 2**20


def test_register_is_idempotent() -> None:
    world_model.register_with_open_clip()
    world_model.register_with_open_clip()
    assert open_clip.list_models().count("ceir-world") == 1


def test_loads_and_zero_shot_colour() -> None:
    world_model.register_with_open_clip()
    model, _, preprocess = open_clip.create_model_and_transforms(
        "ceir-world", pretrained=str(world_model.checkpoint_path())
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer("ceir-world")
    from PIL import Image

    w = World("world10", image_size=32, seed=0)
    samples = [w.sample(i, "test") for i in range(64)]
    # open_clip's own preprocessing (also resizes 64x64 worlds to the model's 32x32)
    x = torch.stack([preprocess(Image.fromarray(s.image)) for s in samples])
    colours = w.oracle.families()["colour"]
    with torch.no_grad():
        img = model.encode_image(x, normalize=True)
        txt = model.encode_text(tokenizer([f"a photo of a {c} object." for c in colours]), normalize=True)
    pred = (img @ txt.T).argmax(1).numpy()
    acc = np.mean([colours[p] == s.families["colour"] for p, s in zip(pred, samples, strict=True)])
    assert img.shape == (64, 128)
    assert acc > 0.75  # chance is 0.1: the weights are trained, and preprocessing matches training


def test_committed_checkpoint_was_trained_on_cpu_within_budget() -> None:
    import json

    info = json.loads(world_model.training_info_path().read_text())
    # The bar: reproducible by scripts/train_world_clip.py on the 2-core CPU in <= 20 minutes.
    assert info["device"] == "cpu"
    assert info["train_seconds"] <= 20 * 60
    assert info["load_average"]["mean"] > 0  # the shared machine's load is recorded with the time


def test_checkpoint_records_the_world_version_and_models_carry_it() -> None:
    """A model fitted on another world version refuses to load instead of giving other numbers."""
    import json

    from ceir_sdk.plugins import get_backbone
    from ceir_sdk.worlds.nuisance import WORLD_VERSION

    info = json.loads(world_model.training_info_path().read_text())
    assert info["world_version"] == WORLD_VERSION == world_model.world_version()
    spec = get_backbone("open-clip:ceir-world", cache=False).spec()
    assert spec["world"] == f"version {WORLD_VERSION}"
