"""Export guarantees that hold for any backbone, not only open_clip (issue 23).

- Parity is measured through the backbone's own ``encode_images`` on decoded images: a backbone
  whose ``preprocess_config()`` says something other than what its encoder does exported "cosine
  1.000000" (both graphs were fed the exporter's own pixels) while the bundle disagreed with the
  fitted model at cosine 0.66-0.91. Such an export is now refused, naming preprocessing.
- ``--int8`` on a backbone without weight MatMuls quantised nothing yet wrote an "int8" copy.
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from onnx_helpers import photo_like
from PIL import Image

from ceir_sdk import BackboneBase
from ceir_sdk.errors import BadInputError

CONCEPTS = ["striped fur", "green grass", "blue water", "a runway", "feathers", "red brick wall", "snow",
            "clouds in the sky"]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


class ConvNet(BackboneBase):
    """Convolutions only (no weight MatMul for int8 to quantise); text: hashed bag of words.

    ``declared_mean`` / ``declared_std`` is what preprocess_config() says; the transform always
    normalises with CLIP's numbers, so declaring anything else is the mismatch of issue 23."""

    name = "convnet"
    embed_dim = 24
    size = 32

    def __init__(self, declared_mean: list[float] = CLIP_MEAN, declared_std: list[float] = CLIP_STD) -> None:
        super().__init__(cache=False)
        self.declared = {"mean": declared_mean, "std": declared_std}
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 5, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(16, self.embed_dim, 3, stride=2),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()

    def transform(self, image: Image.Image) -> np.ndarray:
        img = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
        arr = (np.asarray(img, np.float32) / 255.0 - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(
            CLIP_STD, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def encode_batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.from_numpy(np.stack(inputs))).numpy()

    def encode_text_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.embed_dim), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % self.embed_dim] += 1.0
        return out

    def preprocess_config(self) -> dict[str, Any]:
        return {"image_size": self.size, "resize": "squash", "crop": "none", "interpolation": "bicubic",
                **self.declared}

    def torch_modules(self) -> dict[str, Any]:
        return {"image": self.net}

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "declared": self.declared}


def _parts(backbone: ConvNet) -> Any:
    from ceir_onnx.export import parts_from_model

    from ceir_sdk.model import CEIRModel

    model = CEIRModel(backbone, latent="pca", latent_options={"latent_dim": 4}, seed=0)
    model.fit(photo_like(40, seed=3), CONCEPTS, progress=False)
    return parts_from_model(model)


@pytest.fixture(scope="module")
def host() -> Any:
    from ceir_sdk import plugins as ceir_plugins

    host = ceir_plugins.PluginHost()
    host.load_entry_points(only=["vae"])
    ceir_plugins.reset_host(host)
    yield host
    ceir_plugins.reset_host(None)


def test_a_backbone_whose_preprocessing_is_declared_wrongly_is_refused(host: Any, tmp_path: Path) -> None:
    from ceir_onnx.export import export_bundle

    parts = _parts(ConvNet(declared_mean=[0.5] * 3, declared_std=[0.5] * 3))
    with pytest.raises(BadInputError, match=r"(?s)encode_images.*min cosine 0\.\d+.*preprocess") as caught:
        export_bundle(parts, tmp_path / "bundle", progress=False)
    assert "preprocess_config()" in str(caught.value)
    assert not (tmp_path / "bundle").exists()


def test_parity_with_the_backbone_itself_is_measured_on_decoded_images(host: Any, tmp_path: Path) -> None:
    from ceir_onnx.export import export_bundle

    folder = tmp_path / "check"
    folder.mkdir()
    for i, arr in enumerate(photo_like(5, seed=8)):
        Image.fromarray(arr).save(folder / f"{i}.jpg", quality=85)
    out = export_bundle(_parts(ConvNet()), tmp_path / "bundle", check_images=folder, progress=False)
    measured = json.loads((out / "manifest.json").read_text())["graphs"]["image"]["agreement_to_backbone"]
    assert measured["n"] == 5 and measured["min_cosine"] > 0.9999
    assert "encode_images" in measured["measured_with"]


def test_int8_that_quantises_nothing_says_so_and_writes_no_copy(
        host: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ceir_onnx.export import export_bundle

    with caplog.at_level(logging.WARNING, logger="ceir_onnx"):
        out = export_bundle(_parts(ConvNet()), tmp_path / "bundle", int8=True, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["graphs"]["image"]["variants"]) == {"fp32"}
    assert not (out / "image.int8.onnx").exists()
    assert "no weight MatMul/Gemm" in manifest["graphs"]["image"]["not_written"]["int8"]
    assert any("int8" in r.getMessage() and "nothing to quantise" in r.getMessage() for r in caplog.records)
