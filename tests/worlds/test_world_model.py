"""The committed world checkpoints (ceir-world, and ceir-world-small, the separate concept model)
load through open_clip's own API and see concepts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
world_model = pytest.importorskip("ceir_open_clip.world_model")

from ceir_sdk.worlds import World  # noqa: E402

MODELS = pytest.mark.parametrize("name", ["ceir-world", "ceir-world-small"])


@MODELS
def test_files_present_and_small(name: str) -> None:
    assert world_model.WORLD_MODEL_NAME == "ceir-world"
    assert name in world_model.MODEL_NAMES
    assert world_model.config_path(name).is_file()
    ckpt = world_model.checkpoint_path(name)
    assert ckpt.is_file() and ckpt.suffix == ".safetensors"
    assert ckpt.stat().st_size <= 25 * 2**20  # the budget; the file stays in git


def test_register_is_idempotent() -> None:
    world_model.register_with_open_clip()
    world_model.register_with_open_clip()
    assert open_clip.list_models().count("ceir-world") == 1
    assert open_clip.list_models().count("ceir-world-small") == 1


@MODELS
def test_loads_and_zero_shot_colour(name: str) -> None:
    world_model.register_with_open_clip()
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=str(world_model.checkpoint_path(name))
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
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
    assert img.shape == (64, json.loads(world_model.config_path(name).read_text())["embed_dim"])
    assert acc > 0.75  # chance is 0.1: the weights are trained, and preprocessing matches training


@MODELS
def test_committed_checkpoint_was_trained_on_cpu_within_budget(name: str) -> None:
    info = json.loads(world_model.training_info_path(name).read_text())
    assert info["model"] == name
    # The bar: reproducible by scripts/train_world_clip.py on the 2-core CPU in <= 20 minutes.
    assert info["device"] == "cpu"
    assert info["train_seconds"] <= 20 * 60
    assert info["load_average"]["mean"] > 0  # the shared machine's load is recorded with the time


@MODELS
def test_checkpoint_records_the_world_version_and_models_carry_it(name: str) -> None:
    """A model fitted on another world version refuses to load instead of giving other numbers."""
    from ceir_sdk.plugins import get_backbone
    from ceir_sdk.worlds.nuisance import WORLD_VERSION

    info = json.loads(world_model.training_info_path(name).read_text())
    assert info["world_version"] == WORLD_VERSION == world_model.world_version(name)
    spec = get_backbone(f"open-clip:{name}", cache=False).spec()
    assert spec["world"] == f"version {WORLD_VERSION}"
