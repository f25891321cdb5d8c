"""The concept template: how concepts are phrased for the text encoder, kept across save/load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ceir_sdk.errors import BadInputError
from ceir_sdk.model import CEIRModel


class RecordingBackbone:
    """A text encoder that remembers what it was asked to encode."""

    name = "test:recording"
    embed_dim = 8

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode_texts(self, texts: Any) -> np.ndarray:
        self.seen.extend(texts)
        rng = np.random.default_rng(abs(hash(tuple(texts))) % 2**32)
        return rng.normal(size=(len(texts), self.embed_dim)).astype(np.float32)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name}


def test_template_phrases_the_concepts_and_survives_save(tmp_path: Path, first_party_host: Any) -> None:
    backbone = RecordingBackbone()
    features = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    model = CEIRModel(backbone, latent="pca", concept_template="a photo of {}.", seed=0)
    model.fit_features(features, ["red", "striped"], progress=False)
    assert backbone.seen == ["a photo of red.", "a photo of striped."]
    model.save(tmp_path / "m")
    loaded = CEIRModel.load(tmp_path / "m", backbone=backbone)
    assert loaded.concept_template == "a photo of {}."
    np.testing.assert_allclose(loaded.encode_features(features), model.encode_features(features), atol=1e-6)


def test_template_without_placeholder_is_refused() -> None:
    with pytest.raises(BadInputError, match="must contain"):
        CEIRModel(None, concept_template="a photo")


class TableBackbone(RecordingBackbone):
    """Fixed, distinct embeddings per prompt, so averages can be checked exactly."""

    def encode_texts(self, texts: Any) -> np.ndarray:
        self.seen.extend(texts)
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=self.embed_dim) for t in texts]
                        ).astype(np.float32)


def test_several_templates_are_averaged_after_normalising(tmp_path: Path, first_party_host: Any) -> None:
    backbone = TableBackbone()
    features = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    templates = ["{}", "a photo of {}."]
    model = CEIRModel(backbone, latent="pca", concept_template=templates, seed=0)
    model.fit_features(features, ["red", "striped"], progress=False)
    assert backbone.seen == ["red", "striped", "a photo of red.", "a photo of striped."]
    plain = backbone.encode_texts(["red", "striped"])
    photo = backbone.encode_texts(["a photo of red.", "a photo of striped."])
    unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
    expected = unit(unit(plain) + unit(photo))
    kept = model.bottleneck.kept_index
    np.testing.assert_allclose(model._text_embeddings, expected[kept], atol=1e-6)
    model.save(tmp_path / "m")
    loaded = CEIRModel.load(tmp_path / "m", backbone=backbone)
    assert loaded.concept_template == templates
    np.testing.assert_allclose(loaded.encode_features(features), model.encode_features(features), atol=1e-6)


@pytest.mark.parametrize("bad", [[], ["{}", "no placeholder"], [3]])
def test_bad_template_lists_are_refused(bad: Any) -> None:
    with pytest.raises(BadInputError, match="concept_template"):
        CEIRModel(None, concept_template=bad)
