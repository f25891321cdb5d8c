"""The fit-time check that the text encoder is aligned with the image encoder (issue 23).

A text encoder unrelated to the image encoder (not CLIP-style) used to fit without a word: the
projection reproduced its meaningless scores, clustering fell to NMI 0.09 and explanations still
looked plausible. Now the fit warns, suggests a separate concept model, and records the measure.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import numpy as np
import pytest
from model_synthetic import SMALL_VAE

from ceir_sdk.model import CEIRModel
from ceir_sdk.model.alignment import MIN_ALIGNMENT, variance_ratio


def _fit(x: np.ndarray, names: list[str], text: np.ndarray) -> CEIRModel:
    model = CEIRModel(backbone=None, latent_options=SMALL_VAE, seed=0)
    return model.fit_features(x, names, concept_embeddings=text, progress=False)


def test_aligned_encoders_fit_without_a_warning(world: tuple[Any, ...], caplog: pytest.LogCaptureFixture) -> None:
    x, _, names, text, _ = world  # features are sums of the concepts' text embeddings: aligned
    with caplog.at_level(logging.WARNING, logger="ceir_sdk.model"):
        model = _fit(x, names, text)
    measured = model.provenance["text_alignment"]
    assert measured["aligned"] and measured["ratio"] > MIN_ALIGNMENT and measured["split"] == "validation"
    assert not [r for r in caplog.records if "aligned" in r.getMessage()]


def test_an_unaligned_text_encoder_is_warned_about(world: tuple[Any, ...], caplog: pytest.LogCaptureFixture) -> None:
    x, _, names, text, _ = world
    unrelated = np.random.default_rng(5).normal(size=text.shape).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="ceir_sdk.model"):
        model = _fit(x, names, unrelated)
    measured = model.provenance["text_alignment"]
    assert not measured["aligned"] and measured["ratio"] < MIN_ALIGNMENT
    (warning,) = [r.getMessage() for r in caplog.records if "not look aligned" in r.getMessage()]
    assert "concept_model=" in warning and "--concept-model" in warning and "the given features" in warning


def _bag_of_words(texts: list[str], dim: int) -> np.ndarray:
    out = np.zeros((len(texts), dim), np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % dim] += 1.0
    return out


def test_the_measure_on_a_real_clip_and_on_a_hashed_bag_of_words(first_party_host: Any) -> None:
    """The world's CLIP with its own text tower is well above the bar; the same image features with
    a hashed bag-of-words text encoder (the issue's case) are below it."""
    from ceir_sdk.plugins import get_backbone, get_concept_source
    from ceir_sdk.worlds import World

    world = World("world10", image_size=32)
    images = np.concatenate([b.images for b in world.batches(200, split="val")])
    concepts = get_concept_source("static:world10").generate(progress=False).phrases
    clip = get_backbone("open-clip:ceir-world", device="cpu", cache=False)
    features = clip.encode_images(images, progress=False)
    own = variance_ratio(features, clip.encode_texts(concepts))
    hashed = variance_ratio(features, _bag_of_words(concepts, features.shape[1]))
    assert own is not None and hashed is not None
    assert own > 3 * MIN_ALIGNMENT and hashed < MIN_ALIGNMENT


def test_concepts_spanning_every_dimension_are_not_judged() -> None:
    """With as many independent concept directions as dimensions, every direction is a concept mix."""
    rng = np.random.default_rng(0)
    assert variance_ratio(rng.normal(size=(100, 8)), rng.normal(size=(12, 8))) is None
    assert variance_ratio(rng.normal(size=(100, 64)), rng.normal(size=(12, 64))) is not None
