"""CEIRModel: encode, explain (complete IG), cluster, open-world concepts, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from model_synthetic import SMALL_VAE, TinyBackbone, make_world

from ceir_sdk.contracts import Backbone
from ceir_sdk.errors import BadInputError
from ceir_sdk.model import CEIRModel


def test_head_module_equals_encode_features_and_is_in_eval_mode(
    fitted: CEIRModel, world: tuple[Any, ...]
) -> None:
    x = world[0][:50]
    head = fitted.head_module()
    assert not head.training and not any(m.training for m in head.modules())
    with torch.no_grad():
        c_t, z_t = head(torch.from_numpy(x))
    c, z = fitted.encode_features(x, output="both")
    np.testing.assert_array_equal(c, c_t.numpy())
    np.testing.assert_array_equal(z, z_t.numpy())
    assert z.dtype == np.float32 and z.shape == (50, SMALL_VAE["latent_dim"])
    # eval mode: a batch of one gives the same row as the full batch (no batch statistics).
    np.testing.assert_allclose(fitted.encode_features(x[3:4]), z[3:4], atol=1e-6)


def test_concept_text_embeddings_are_unit_norm(fitted: CEIRModel) -> None:
    t = fitted.concept_text_embeddings()
    assert t.shape == (len(fitted.concepts), 32) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("target", ["self", 2, "cluster"])
def test_integrated_gradients_are_complete(fitted: CEIRModel, world: tuple[Any, ...], target: Any) -> None:
    x = world[0][:30]
    clusters = fitted.cluster(features=world[0], k=4, restarts=2) if target == "cluster" else None
    explanations = fitted.explain(features=x, target=target, clusters=clusters)
    assert len(explanations) == 30
    for e in explanations:
        diff = e.output - e.baseline_output
        assert abs(e.contributions.sum() - diff) <= 0.01 * max(abs(diff), 1e-6)
        assert e.completeness_error <= 0.01
    # "self" attributes the latent's distance from the mean image's latent.
    if target == "self":
        assert all(e.output - e.baseline_output > 0 for e in explanations)


def test_explanations_name_true_concepts(fitted: CEIRModel, world: tuple[Any, ...]) -> None:
    x, _, names, _, truth = world
    explanations = fitted.explain(features=x[:40])
    hits = [
        np.mean([names.index(c) in truth[i] for c, _ in e.top_present(3)])
        for i, e in enumerate(explanations)
    ]
    assert np.mean(hits) >= 0.6
    labelled = explanations[0].labelled(24)
    assert any(text.startswith("NOT ") for text, _ in labelled)


def test_cluster_recovers_classes_and_names_them(fitted: CEIRModel, world: tuple[Any, ...]) -> None:
    from scipy.optimize import linear_sum_assignment

    x, y, names, _, _ = world
    result = fitted.cluster(features=x, k=4, restarts=3, seed=0)
    table = np.zeros((4, 4))
    np.add.at(table, (result.labels, y), 1)
    r, c = linear_sum_assignment(-table)
    assert table[r, c].sum() / len(y) >= 0.8
    per = len(names) // 4
    for k in range(4):
        majority = int(np.bincount(y[result.labels == k], minlength=4).argmax())
        top = names.index(result.names[k][0][0])
        assert majority * per <= top < (majority + 1) * per
    assert sum(result.sizes) == len(x)


def test_fewer_images_than_clusters_is_a_clear_error(fitted: CEIRModel, world: tuple[Any, ...]) -> None:
    with pytest.raises(BadInputError, match="cannot form 10 clusters from 5 images"):
        fitted.cluster(features=world[0][:5], k=10)


def test_open_world_concepts_for_an_unseen_class() -> None:
    x, y, names, text, _ = make_world(500, seed=8)
    m = CEIRModel(backbone=None, latent="identity")
    m.fit_features(x[y != 3], names, concept_embeddings=text, progress=False)  # class 3 never seen
    found = m.extract_concepts(features=x[y == 3][:20], top_k=3)
    per = len(names) // 4
    share = np.mean([3 * per <= names.index(c) < 4 * per for row in found for c, _ in row])
    assert share >= 0.8


def test_fit_is_deterministic_given_seed(world: tuple[Any, ...]) -> None:
    x, _, names, text, _ = world

    def fit(seed: int) -> np.ndarray:
        m = CEIRModel(backbone=None, latent_options=SMALL_VAE, seed=seed)
        m.fit_features(x, names, concept_embeddings=text, progress=False)
        out: np.ndarray = m.encode_features(x[:20])
        return out

    a, b, c = fit(5), fit(5), fit(6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_on_images_through_a_backbone() -> None:
    backbone = TinyBackbone()
    assert isinstance(backbone, Backbone)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 8, 8, 3), dtype=np.uint8)
    m = CEIRModel(backbone=backbone, latent="pca", latent_options={"latent_dim": 3})
    concepts = ["red", "round", " red", "striped", "", "furry", "metal"]
    m.fit(images, concepts, progress=False)
    assert len(m.concepts) <= 5 and "" not in m.concepts  # cleaned: stripped, de-duplicated
    np.testing.assert_array_equal(
        m.encode(images[:7], progress=False), m.encode_features(backbone.encode_images(images[:7]))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": np.zeros((3, 5), np.float32)}, "dimensions"),
        ({"features": np.full((3, 32), np.nan, np.float32)}, "NaN"),
    ],
)
def test_bad_features_are_reported(fitted: CEIRModel, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        fitted.encode_features(kwargs["features"])


def test_too_few_training_images_and_empty_concepts() -> None:
    x, _, names, text, _ = make_world(30, seed=1)
    m = CEIRModel(backbone=None, latent="identity")
    with pytest.raises(BadInputError, match="at least 10"):
        m.fit_features(x[:5], names, concept_embeddings=text, progress=False)
    with pytest.raises(BadInputError, match="empty"):
        m.fit_features(x, ["  ", ""], concept_embeddings=text[:2], progress=False)
    with pytest.raises(BadInputError, match="not fitted"):
        m.encode_features(x)
