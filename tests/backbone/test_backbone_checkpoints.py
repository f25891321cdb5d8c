"""Local checkpoints load through open_clip's real loader (pretrained=path); the world model too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tiny_models import TINY_OTHER

from ceir_sdk import get_backbone
from ceir_sdk.errors import CeirError, IncompatibleFileError


def _trained_like_state(name: str, seed: int) -> tuple[Any, dict[str, torch.Tensor]]:
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    model.eval()
    return model, {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


@pytest.mark.usefixtures("backbone_host")
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_is_loaded(tiny_model_name: str, tmp_path: Path, suffix: str) -> None:
    model, state = _trained_like_state(tiny_model_name, seed=123)
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    bb = get_backbone(f"open-clip:{tiny_model_name}@{path}", cache=False, device="cpu")
    assert bb.name == f"open-clip:{tiny_model_name}@{path.resolve()}"
    spec = bb.spec()
    assert spec["kind"] == "checkpoint" and len(spec["weights_sha256"]) == 64
    tokens = bb.tokenizer(["a zebra"])
    with torch.no_grad():
        expected = model.encode_text(tokens).numpy()
    np.testing.assert_allclose(bb.encode_texts(["a zebra"]), expected, rtol=1e-4, atol=1e-5)
    random_init = get_backbone(f"open-clip:{tiny_model_name}", cache=False, device="cpu")
    assert not np.allclose(random_init.encode_texts(["a zebra"]), expected)


@pytest.mark.usefixtures("backbone_host")
def test_checkpoint_of_another_architecture_is_refused(tiny_model_name: str, tmp_path: Path) -> None:
    _, state = _trained_like_state(TINY_OTHER, seed=0)
    path = tmp_path / "other.safetensors"
    save_file(state, str(path))
    with pytest.raises(IncompatibleFileError, match="does not fit open_clip model 'ceir-test-tiny'"):
        get_backbone(f"open-clip:{tiny_model_name}@{path}")


def test_entry_point_registers_open_clip(first_party_host: Any) -> None:
    regs = first_party_host.registrations("backbone")
    assert "open-clip" in regs and regs["open-clip"].plugin == "open-clip"


def test_ceir_world_resolves_to_the_bundled_model(backbone_host: Any) -> None:
    world_model = pytest.importorskip("ceir_open_clip.world_model")
    if not Path(world_model.checkpoint_path()).is_file():
        pytest.skip("the ceir-world checkpoint has not been trained into the repository yet")
    bb = get_backbone("open-clip:ceir-world", cache=False)
    assert bb.name == "open-clip:ceir-world" and bb.spec()["kind"] == "world"
    assert bb.model_name == world_model.WORLD_MODEL_NAME
    default = get_backbone("open-clip", cache=False)  # no spec: the offline default
    assert default.name == "open-clip:ceir-world"
    images = np.zeros((2, 32, 32, 3), np.uint8)
    assert bb.encode_images(images, progress=False).shape == (2, bb.embed_dim)


def test_ceir_world_path_with_stand_in_weights(
    backbone_host: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The world-model route end to end, with seeded weights standing in for the trained file."""
    world_model = pytest.importorskip("ceir_open_clip.world_model")
    world_model.register_with_open_clip()
    model, state = _trained_like_state(world_model.WORLD_MODEL_NAME, seed=7)
    stand_in = tmp_path / "ceir-world.safetensors"
    save_file(state, str(stand_in))
    monkeypatch.setattr(world_model, "checkpoint_path", lambda name=None: stand_in)
    bb = get_backbone("open-clip:ceir-world", cache=False, device="cpu")
    assert bb.spec()["kind"] == "world" and bb.embed_dim == 128
    with torch.no_grad():
        expected = model.encode_text(bb.tokenizer(["a zebra"])).numpy()
    np.testing.assert_allclose(bb.encode_texts(["a zebra"]), expected, rtol=1e-4, atol=1e-5)
    monkeypatch.setattr(world_model, "checkpoint_path", lambda name=None: tmp_path / "missing.safetensors")
    with pytest.raises(CeirError, match=r"ceir-world checkpoint .* is missing"):
        get_backbone("open-clip:ceir-world")


@pytest.mark.usefixtures("backbone_host")
def test_moved_checkpoint_keeps_its_cache(tiny_model_name: str, tmp_path: Path) -> None:
    _, state = _trained_like_state(tiny_model_name, seed=5)
    first = tmp_path / "a" / "w.safetensors"
    first.parent.mkdir()
    save_file(state, str(first))
    images = np.zeros((3, 32, 32, 3), np.uint8) + np.arange(3, dtype=np.uint8)[:, None, None, None]
    bb = get_backbone(f"open-clip:{tiny_model_name}@{first}", cache=tmp_path / "c")
    assert bb.encode(images, progress=False).n_encoded == 3
    moved = tmp_path / "b" / "renamed.safetensors"
    moved.parent.mkdir()
    first.rename(moved)
    again = get_backbone(f"open-clip:{tiny_model_name}@{moved}", cache=tmp_path / "c")
    assert again.encode(images, progress=False).n_cached == 3


def test_declared_backbone_options_are_the_backbones_own(first_party_host: Any) -> None:
    import inspect

    from ceir_open_clip.backbone import OpenClipBackbone
    from ceir_open_clip.plugin import BACKBONE_OPTIONS

    from ceir_sdk.errors import BadInputError

    assert set(BACKBONE_OPTIONS) == set(inspect.signature(OpenClipBackbone).parameters) - {"spec"}
    with pytest.raises(BadInputError, match=r"'open-clip' \(plugin 'open-clip'\) does not take the option\(s\) sed"):
        first_party_host.resolve("backbone", "open-clip:RN50", sed=3)
