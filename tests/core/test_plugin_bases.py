"""The plugin base classes (ceir_sdk.plugin_bases): what an author who subclasses them gets for free.

Issue 23: without an ``encode`` member, ``--on-error skip`` and ``--max-pixels`` were silently
ignored, ``"crop": "banana"`` was accepted, and every concept source wrote its own cache and retries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ceir_sdk import BackboneBase, ConceptSourceBase
from ceir_sdk.concepts import RetryableError
from ceir_sdk.contracts import Backbone, ConceptSource
from ceir_sdk.errors import BadInputError, PluginError


class MeanColour(BackboneBase):
    """Features: mean RGB of an 8x8 thumbnail, one-hot of the text length (enough to check plumbing)."""

    name = "mean-colour"
    embed_dim = 3

    def __init__(self, preprocess: dict[str, Any] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._pre = preprocess or {"image_size": 8, "resize": "squash", "mean": [0.5] * 3, "std": [0.5] * 3}
        self.batches: list[int] = []

    def transform(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize((8, 8)), np.float32) / 255.0

    def encode_batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        self.batches.append(len(inputs))
        return np.stack([x.mean(axis=(0, 1)) for x in inputs])

    def encode_text_batch(self, texts: list[str]) -> np.ndarray:
        return np.eye(3, dtype=np.float32)[[len(t) % 3 for t in texts]]

    def preprocess_config(self) -> dict[str, Any]:
        return self._pre

    def spec(self) -> dict[str, Any]:
        return {"name": self.name}


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (16, 12), colour).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    Image.new("RGB", (400, 400), (9, 9, 9)).save(folder / "huge.png")
    return folder


def test_a_subclass_meets_the_backbone_contract() -> None:
    assert isinstance(MeanColour(), Backbone)


def test_encode_skips_unreadable_images_and_reports_them(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    enc = MeanColour(cache=False).encode(folder, on_error="skip", progress=False)
    assert sorted(enc.ids) == ["0.png", "1.png", "2.png", "huge.png"]
    assert enc.report.n_skipped == 1 and "broken.png" in enc.report.details()
    red = enc.features[enc.ids.index("0.png")]
    np.testing.assert_allclose(red, [1.0, 0.0, 0.0], atol=1e-6)
    with pytest.raises(BadInputError, match=r"broken\.png"):
        MeanColour(cache=False).encode(folder, on_error="fail", progress=False)


def test_max_pixels_refuses_larger_images(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    enc = MeanColour(cache=False, on_error="skip", max_pixels=1000).encode(folder, progress=False)
    assert "huge.png" not in enc.ids and enc.report.n_skipped == 2


def test_batches_and_encode_images_on_any_input() -> None:
    backbone = MeanColour(batch_size=2, cache=False)
    arrays = np.zeros((5, 10, 10, 3), np.uint8)
    feats = backbone.encode_images(arrays, progress=False)
    assert feats.shape == (5, 3) and feats.dtype == np.float32
    assert backbone.batches == [2, 2, 1]
    pil = [Image.new("RGB", (5, 7), (0, 0, 255))]
    np.testing.assert_allclose(backbone.encode_images(pil, progress=False), [[0, 0, 1]], atol=1e-6)


def test_encode_texts_batches_and_checks_its_input() -> None:
    backbone = MeanColour()
    assert backbone.encode_texts(["a", "bb", "ccc"], batch_size=2).shape == (3, 3)
    with pytest.raises(BadInputError, match=r"wrap a single text"):
        backbone.encode_texts("a cat")


def test_a_wrong_width_names_the_backbone() -> None:
    class Wrong(MeanColour):
        def encode_batch(self, inputs: list[np.ndarray]) -> np.ndarray:
            return np.zeros((len(inputs), 5), np.float32)

    with pytest.raises(PluginError, match=r"'mean-colour'.*shape \(1, 5\).*embed_dim=3"):
        Wrong(cache=False).encode_images([Image.new("RGB", (4, 4))], progress=False)


def test_features_are_cached_by_spec(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    first = MeanColour(cache=tmp_path / "cache", on_error="skip").encode(folder, progress=False)
    again = MeanColour(cache=tmp_path / "cache", on_error="skip").encode(folder, progress=False)
    assert first.n_encoded == 4 and again.n_cached == 4
    np.testing.assert_array_equal(first.features, again.features)


@pytest.mark.parametrize(("change", "message"), [
    ({"crop": "banana"}, r"'crop' is 'banana'; allowed: center, center-or-pad, none"),
    ({"resize": "stretch"}, r"'resize' is 'stretch'; allowed: shortest, longest, squash"),
    ({"interpolation": "lanczos"}, r"'interpolation' is 'lanczos'; allowed: bicubic, bilinear"),
    ({"mean": [0.5, 0.5]}, r"'mean' is \[0.5, 0.5\]; it must be 3 finite floats"),
    ({"std": [0.5, 0.0, 0.5]}, r"'std' .* must be 3 positive finite floats"),
    ({"image_size": [224, 160]}, r"'image_size' is \[224, 160\].*square"),
    ({"crop": "center"}, r"'crop' 'center' does not go with 'resize' 'squash'"),
    ({"colour_jitter": 1}, r"unknown keys 'colour_jitter'"),
])
def test_preprocess_config_is_checked_with_the_allowed_values(change: dict[str, Any], message: str) -> None:
    cfg = {"image_size": 8, "resize": "squash", **change}
    with pytest.raises(BadInputError, match=message):
        MeanColour(preprocess=cfg).preprocess_config()


def test_a_valid_preprocess_config_is_returned_unchanged() -> None:
    cfg = {"image_size": [32, 32], "resize": "longest", "crop": "center-or-pad", "interpolation": "bilinear"}
    assert MeanColour(preprocess=cfg).preprocess_config() is cfg


class Flaky(ConceptSourceBase):
    name = "flaky"
    model = "handbook-v1"
    cache_by_default = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[str] = []

    def concepts_for(self, class_name: str, *, domain: str | None = None) -> Any:
        self.calls.append(class_name)
        if self.calls.count(class_name) == 1 and class_name == "cat":
            raise RetryableError("rate limited", retry_after=0.0)
        if class_name == "cat":
            return {"features": ["whiskers", " four legs "], "around": ["a sofa"]}
        return ["four legs", "a lead"]


def test_concept_source_base_merges_retries_caches_and_records_provenance(tmp_path: Path) -> None:
    source = Flaky(cache_dir=tmp_path)
    assert isinstance(source, ConceptSource)
    out = source.generate(["cat", "dog"], domain="pets", progress=False)
    assert source.calls == ["cat", "cat", "dog"]  # one retry
    assert out.phrases == ["whiskers", "four legs", "a sofa", "a lead"]
    assert {(o.kind, o.class_name) for o in out.origins_of("four legs")} == {("features", "cat"),
                                                                           ("features", "dog")}
    assert out.source == "flaky" and out.model == "handbook-v1" and out.class_names == ["cat", "dog"]
    assert out.generation["domain"] == "pets" and out.generation["n_cached"] == 0
    again = Flaky(cache_dir=tmp_path)
    cached = again.generate(["cat", "dog"], domain="pets", progress=False)
    assert again.calls == [] and cached.phrases == out.phrases and cached.generation["n_cached"] == 2
    entries = list(tmp_path.rglob("*.json"))
    assert len(entries) == 2 and "whiskers" in entries[0].read_text() + entries[1].read_text()
    assert json.loads(entries[0].read_text())["request"]["source"] == "flaky"


def test_concept_source_base_gives_up_after_max_retries(tmp_path: Path) -> None:
    class Down(ConceptSourceBase):
        name = "down"

        def concepts_for(self, class_name: str, *, domain: str | None = None) -> Any:
            raise RetryableError("server error", retry_after=0.0)

    with pytest.raises(Exception, match=r"gave up after 2 attempts"):
        Down(max_retries=1).generate(["cat"], progress=False)


def test_concept_source_base_refuses_a_bad_answer() -> None:
    class Bad(ConceptSourceBase):
        name = "bad"

        def concepts_for(self, class_name: str, *, domain: str | None = None) -> Any:
            return "whiskers"

    with pytest.raises(PluginError, match=r"concept source 'bad'.*list of phrases"):
        Bad().generate(["cat"], progress=False)


class Bare:
    """A backbone with the required members only (no encode): what BackboneBase spares an author."""

    name = "bare"
    embed_dim = 3

    def encode_images(self, images: Any, *, batch_size: int = 64, progress: bool = True) -> np.ndarray:
        from ceir_sdk.data import as_dataset

        return np.stack([np.asarray(item.image, np.float32).mean(axis=(0, 1)) + 1.0 for item in as_dataset(images)])

    def encode_texts(self, texts: Any) -> np.ndarray:
        return np.eye(3, dtype=np.float32)[[len(t) % 3 for t in texts]] + 0.1

    def spec(self) -> dict[str, Any]:
        return {"name": self.name}


def test_max_pixels_is_refused_not_ignored_for_a_backbone_without_encode(tmp_path: Path, first_party_host: Any) -> None:
    """Issue 23: without encode, --max-pixels was silently ignored; now the user hears why, and the
    author how to get encode (BackboneBase)."""
    from ceir_sdk.index.encoder import ModelEncoder
    from ceir_sdk.model import CEIRModel

    folder = _folder(tmp_path)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(40)]
    model = CEIRModel(Bare(), latent="pca", latent_options={"latent_dim": 2}).fit(
        images, ["a", "bb", "ccc", "dddd", "eeeee"], progress=False)
    encoder = ModelEncoder(model)
    with pytest.raises(BadInputError, match=r"'bare' cannot apply max_pixels.*BackboneBase"):
        encoder.encode_image_files([str(folder / "huge.png")], max_pixels=1000)
    with pytest.raises(BadInputError, match=r"cannot skip unreadable images.*BackboneBase"):
        encoder.encode_image_files([str(folder / "0.png")], on_error="skip")


def test_a_backbone_can_leave_the_check_of_derived_preprocessing_to_export() -> None:
    class Derived(MeanColour):
        preprocess_checked = False

    assert Derived(preprocess={"image_size": 8, "fill_color": 255}).preprocess_config()["fill_color"] == 255
