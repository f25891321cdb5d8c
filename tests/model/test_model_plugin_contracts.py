"""Backbone and latent plugins that break their contracts are named at fit time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from model_synthetic import TinyBackbone
from torch import nn

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.errors import PluginError
from ceir_sdk.model import CEIRModel
from ceir_sdk.model.world_concepts import oracle_concepts
from ceir_sdk.worlds import World


class _NarrowBackbone(TinyBackbone):
    """Declares 16 dimensions, returns 15."""

    def encode_images(self, images: Any, **options: Any) -> np.ndarray:
        return super().encode_images(images, **options)[:, :15]


class _Latent:
    """A PCA-like latent whose encode() and encoder_module() can be made to disagree."""

    latent_dim = 3

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def fit(self, x: np.ndarray, **kwargs: Any) -> _Latent:
        self.width = x.shape[1]
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        wide = self.mode == "wide-encode"
        return np.asarray(x[:, : self.latent_dim * (2 if wide else 1)], np.float32)

    def encoder_module(self) -> nn.Module:
        if self.mode == "no-module":
            raise NotImplementedError
        layer = nn.Linear(self.width, self.latent_dim, bias=False)
        layer.weight.data.zero_()
        for i in range(self.latent_dim):
            layer.weight.data[i, i] = 2.0 if self.mode == "disagree" else 1.0
        return layer

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def load_state(self, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        return None


class _Plugin:
    @staticmethod
    @ceir_plugins.hookspecs.hookimpl
    def register_latent_models(register: Any) -> None:
        register("toy", lambda spec=None, mode="ok": _Latent(mode))


@pytest.fixture
def images_and_concepts() -> tuple[np.ndarray, list[str]]:
    world = World("world10", image_size=32)
    return next(world.batches(160, split="train", batch_size=160)).images, oracle_concepts(world)


def test_a_backbone_returning_the_wrong_width_is_named(images_and_concepts: Any) -> None:
    images, concepts = images_and_concepts
    with pytest.raises(PluginError, match=r"backbone 'tiny:test' returned features of shape \(160, 15\).*embed_dim 16"):
        CEIRModel(_NarrowBackbone(), latent="pca").fit(images, concepts, progress=False)


@pytest.mark.parametrize(("mode", "message"), [
    ("ok", None),
    ("no-module", "has no encoder_module"),
    ("wide-encode", r"encode\(\) gives shape \(8, 6\).*latent_dim is 3"),
    ("disagree", "disagree"),
])
def test_latent_plugins_are_checked_after_fitting(vae_host: ceir_plugins.PluginHost, images_and_concepts: Any,
                                                  mode: str, message: str | None) -> None:
    vae_host.register(_Plugin(), name="toy-plugin")
    images, concepts = images_and_concepts
    model = CEIRModel(TinyBackbone(), latent="toy", latent_options={"mode": mode})
    if message is None:
        assert model.fit(images, concepts, progress=False).encode(images[:4]).shape == (4, 3)
        return
    with pytest.raises(PluginError, match=message):
        model.fit(images, concepts, progress=False)


class _TextTinyBackbone(TinyBackbone):
    """Has a text module but no CLIP BPE tokenizer."""

    def torch_modules(self) -> dict[str, Any]:
        return {"image": self.image, "text": nn.Identity()}


class _WrongPreprocessBackbone(TinyBackbone):
    def preprocess_config(self) -> dict[str, Any]:
        return {"size": 8, "resize_mode": "shortest"}


class _NoModulesBackbone(TinyBackbone):
    torch_modules = None  # type: ignore[assignment]


@pytest.mark.parametrize(("backbone", "message"), [
    (_TextTinyBackbone, "tokenizes only CLIP BPE.*leave 'text' out of torch_modules"),
    (_WrongPreprocessBackbone, r"needs \"image_size\".*\(not resize_mode, size\)"),
    (_NoModulesBackbone, r"no image module to export.*torch_modules\(\)"),
])
def test_onnx_export_of_a_custom_backbone_says_what_the_backbone_lacks(
        images_and_concepts: Any, tmp_path: Any, backbone: Any, message: str) -> None:
    from ceir_onnx.export import export_bundle, parts_from_model

    from ceir_sdk.errors import BadInputError

    images, concepts = images_and_concepts
    model = CEIRModel(backbone(), latent="pca", latent_options={"latent_dim": 4}).fit(images, concepts, progress=False)
    with pytest.raises(BadInputError, match=message):
        export_bundle(parts_from_model(model), tmp_path / "bundle", progress=False)


def test_an_image_only_custom_backbone_exports(images_and_concepts: Any, tmp_path: Any) -> None:
    from ceir_onnx.export import export_bundle, parts_from_model
    from ceir_onnx.runtime import Runtime

    from ceir_sdk.errors import BadInputError

    images, concepts = images_and_concepts
    model = CEIRModel(TinyBackbone(), latent="pca", latent_options={"latent_dim": 4}).fit(images, concepts,
                                                                                         progress=False)
    bundle = export_bundle(parts_from_model(model), tmp_path / "bundle", progress=False)
    runtime = Runtime(bundle, providers="cpu")
    assert not (bundle / "text.onnx").exists()
    # (The tiny backbone pools 32 px to 8 itself, the runtime resizes bicubically: close, not equal.)
    latent = runtime.embed(images[:3])
    assert latent.shape == (3, 4) and np.isfinite(latent).all()
    with pytest.raises(BadInputError, match="image-only"):
        runtime.encode_texts(["striped"])


def test_skipping_unreadable_files_needs_a_backbone_with_encode(images_and_concepts: Any, tmp_path: Any) -> None:
    from ceir_sdk.errors import BadInputError
    from ceir_sdk.index.encoder import ModelEncoder

    images, concepts = images_and_concepts
    model = CEIRModel(TinyBackbone(), latent="pca", latent_options={"latent_dim": 4}).fit(images, concepts,
                                                                                         progress=False)
    with pytest.raises(BadInputError, match=r"'tiny:test' cannot skip unreadable images \(it has no encode"):
        ModelEncoder(model).encode_image_files([str(tmp_path / "a.png")], on_error="skip")


def test_cli_features_refuse_skip_and_pixel_limit_without_encode(tmp_path: Any) -> None:
    """`ceir fit/encode/...` on image files with a backbone lacking encode(): --on-error skip and
    --max-pixels are refused by name, not silently ignored (issue 23)."""
    import click

    from ceir_sdk.cli.model_cmd import _features, _Inputs
    from ceir_sdk.errors import BadInputError

    files = [str(tmp_path / "a.png")]
    with click.Context(click.Command("fit")) as ctx:
        with pytest.raises(BadInputError, match=r"'tiny:test' cannot skip unreadable images.*BackboneBase"):
            _features(TinyBackbone(), _Inputs(images=files), "skip", progress=False)
        ctx.meta["max_pixels"] = 1000
        with pytest.raises(BadInputError, match=r"'tiny:test' cannot apply max_pixels.*--max-pixels"):
            _features(TinyBackbone(), _Inputs(images=files), "fail", progress=False)
