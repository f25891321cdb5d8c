"""The open-clip backbone through the registry: loading, encoding, preprocessing, cache, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ceir_sdk import get_backbone
from ceir_sdk.contracts import Backbone
from ceir_sdk.errors import BadInputError, CeirError, IncompatibleFileError, UnknownNameError

pytestmark = pytest.mark.usefixtures("backbone_host")


def _images(n: int = 6, seed: int = 0, size: tuple[int, int] = (40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, size[0], size[1], 3)) * 255).astype(np.uint8)


@pytest.fixture
def tiny(tiny_model_name: str) -> Any:
    # CPU on purpose: these tests compare numbers with open_clip run on the CPU (on a CUDA machine
    # the default is CUDA with mixed precision, checked by the device script instead).
    return get_backbone(f"open-clip:{tiny_model_name}", cache=False, device="cpu")


def test_is_a_backbone_with_full_name(tiny: Any, tiny_model_name: str) -> None:
    assert isinstance(tiny, Backbone)
    assert tiny.name == f"open-clip:{tiny_model_name}" and tiny.embed_dim == 32
    spec = tiny.spec()
    assert spec["name"] == tiny.name and spec["kind"] == "random" and spec["seed"] == 0
    assert spec["preprocess"] == tiny.preprocess_config()


def test_encode_images_matches_open_clip_directly(tiny: Any) -> None:
    images = _images()
    feats = tiny.encode_images(images, batch_size=4, progress=False)
    assert feats.shape == (6, 32) and feats.dtype == np.float32
    pixels = torch.stack([tiny.preprocess(Image.fromarray(a)) for a in images])
    with torch.no_grad():
        ref = tiny.model.encode_image(pixels).numpy()
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.linalg.norm(feats, axis=1), 1.0)  # unnormalised, as the contract says
    image_module = tiny.torch_modules()["image"]
    with torch.no_grad():
        np.testing.assert_allclose(image_module(pixels).numpy(), feats, rtol=1e-4, atol=1e-5)


def test_parallel_decoding_keeps_input_order(tiny_model_name: str) -> None:
    images = _images(9)
    one = get_backbone(f"open-clip:{tiny_model_name}", cache=False, num_workers=1)
    many = get_backbone(f"open-clip:{tiny_model_name}", cache=False, num_workers=3)
    a = one.encode_images(images, batch_size=2, progress=False)
    b = many.encode_images(images, batch_size=2, progress=False)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    single = one.encode_images(images[4:5], progress=False)
    np.testing.assert_allclose(single[0], a[4], rtol=1e-4, atol=1e-5)


def test_encode_texts(tiny: Any) -> None:
    texts = ["striped fur", "a red ladybug", "striped fur"]
    feats = tiny.encode_texts(texts)
    assert feats.shape == (3, 32) and feats.dtype == np.float32
    np.testing.assert_array_equal(feats[0], feats[2])
    assert not np.allclose(feats[0], feats[1])
    modules = tiny.torch_modules()
    with torch.no_grad():
        direct = modules["text"](modules["tokenize"](texts)).numpy()
    np.testing.assert_allclose(feats, direct, rtol=1e-4, atol=1e-5)
    assert tiny.encode_texts([]).shape == (0, 32)
    with pytest.raises(BadInputError, match="list of texts"):
        tiny.encode_texts("striped fur")
    with pytest.raises(BadInputError, match="needs strings"):
        tiny.encode_texts(["ok", 3])


def test_tokenizer_info(tiny: Any) -> None:
    info = tiny.tokenizer_info()
    assert info["kind"] == "clip-bpe" and info["context_length"] == 16
    assert Path(info["vocab_file"]).is_file() and info["vocab_file"].endswith(".txt.gz")
    tokens = tiny.torch_modules()["tokenize"](["a"])
    assert tokens.dtype == torch.int64 and tokens.shape == (1, 16)
    assert int(tokens[0, 0]) == info["sot_token_id"]


def test_preprocess_config_matches_open_clip_transform(tiny: Any) -> None:
    from torchvision import transforms as T

    cfg = tiny.preprocess_config()
    steps = {type(t).__name__: t for t in tiny.preprocess.transforms}
    assert steps["Resize"].size == cfg["image_size"] == 32
    assert steps["Resize"].interpolation.value == cfg["interpolation"] == "bicubic"
    assert list(steps["CenterCrop"].size) == [32, 32] and cfg["crop"] == "center" and cfg["resize"] == "shortest"
    assert isinstance(steps["Normalize"], T.Normalize)
    assert list(steps["Normalize"].mean) == cfg["mean"] and list(steps["Normalize"].std) == cfg["std"]
    # Re-implemented from the config alone (what a torch-free runtime does): same pixels.
    img = Image.fromarray(_images(1, size=(50, 70))[0])
    w, h = img.size
    s = cfg["image_size"]
    # torchvision truncates the long side (int(), not round()): a runtime must do the same.
    size = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    resized = img.resize(size, Image.Resampling.BICUBIC)
    left, top = round((resized.width - s) / 2), round((resized.height - s) / 2)
    crop = np.asarray(resized.crop((left, top, left + s, top + s)), np.float32) / 255.0
    mine = ((crop - cfg["mean"]) / cfg["std"]).transpose(2, 0, 1)
    np.testing.assert_allclose(mine, tiny.preprocess(img).numpy(), atol=1e-5)


def test_random_weights_are_seeded(tiny_model_name: str) -> None:
    images = _images(2)
    a = get_backbone(f"open-clip:{tiny_model_name}", cache=False).encode_images(images, progress=False)
    b = get_backbone(f"open-clip:{tiny_model_name}", cache=False).encode_images(images, progress=False)
    c = get_backbone(f"open-clip:{tiny_model_name}", cache=False, seed=1).encode_images(images, progress=False)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_cache_hit_avoids_reencoding(tiny_model_name: str, tmp_path: Path) -> None:
    images = _images(7)
    first = get_backbone(f"open-clip:{tiny_model_name}", cache=tmp_path / "c")
    out1 = first.encode(images, batch_size=3, progress=False)
    assert out1.n_encoded == 7
    # A new backbone object (a refit in a new process): every row comes from disk.
    second = get_backbone(f"open-clip:{tiny_model_name}", cache=tmp_path / "c")
    calls = {"n": 0}
    real = second.model.encode_image

    def counting(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return real(x)

    second.model.encode_image = counting
    out2 = second.encode(images, batch_size=3, progress=False)
    assert calls["n"] == 0 and out2.n_cached == 7
    np.testing.assert_array_equal(out1.features, out2.features)
    # Another seed is another model: its own cache namespace, so it encodes.
    third = get_backbone(f"open-clip:{tiny_model_name}", cache=tmp_path / "c", seed=3)
    assert third.encode(images, progress=False).n_encoded == 7


def test_default_cache_follows_environment(tiny_model_name: str, tmp_path: Path) -> None:
    bb = get_backbone(f"open-clip:{tiny_model_name}")
    bb.encode_images(_images(2), progress=False)
    assert list((tmp_path / "feature-cache").glob("*/index.json"))  # the fixture's CEIR_FEATURE_CACHE
    assert get_backbone(f"open-clip:{tiny_model_name}", cache=False).feature_cache() is None


def test_skip_policy_returns_ids_and_report(tiny: Any, tmp_path: Path) -> None:
    Image.fromarray(_images(1)[0]).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    Image.fromarray(_images(1, seed=1)[0]).save(tmp_path / "c.jpg")
    (tmp_path / "notes.txt").write_text("x")
    out = tiny.encode(tmp_path, on_error="skip", progress=False)
    assert out.ids == ["a.png", "c.jpg"] and out.features.shape == (2, 32)
    assert "empty" in out.report.summary() and "ignored 1 non-image files" in out.report.summary()
    with pytest.raises(BadInputError, match=r"b\.png: file is empty"):
        tiny.encode_images(tmp_path, progress=False)


def test_bad_names_give_clear_errors(tiny_model_name: str) -> None:
    with pytest.raises(UnknownNameError, match="did you mean"):
        get_backbone("open-clip:ViT-B-3")
    with pytest.raises(UnknownNameError, match=r"no pretrained tag 'nonsense'.*laion2b_s34b_b79k"):
        get_backbone("open-clip:ViT-B-32/nonsense")
    with pytest.raises(BadInputError, match="checkpoint file not found"):
        get_backbone(f"open-clip:{tiny_model_name}@/no/such/file.safetensors")
    with pytest.raises(BadInputError, match="no CUDA device"):
        if torch.cuda.is_available():
            raise BadInputError("no CUDA device (skipped: this machine has one)")
        get_backbone(f"open-clip:{tiny_model_name}", device="cuda")
    with pytest.raises(BadInputError, match="precision"):
        get_backbone(f"open-clip:{tiny_model_name}", precision="fp8")


def test_pretrained_tag_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache: the weights are not there
    with pytest.raises(CeirError, match=r"could not fetch weights.*open-clip:ViT-B-32@/path"):
        get_backbone("open-clip:ViT-B-32/laion2b_s34b_b79k")


def test_checkpoint_errors_are_incompatible_file_errors(tiny_model_name: str, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(IncompatibleFileError, match=r"garbage\.safetensors"):
        get_backbone(f"open-clip:{tiny_model_name}@{bad}")
    with pytest.raises(BadInputError, match="suffix"):
        wrong = tmp_path / "weights.txt"
        wrong.write_text("x")
        get_backbone(f"open-clip:{tiny_model_name}@{wrong}")
