"""The concept bottleneck: cutoffs, validation-only model selection, z-scoring."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from model_synthetic import make_world

from ceir_sdk.errors import BadInputError
from ceir_sdk.model import BottleneckConfig, CEIRModel, ConceptBottleneck
from ceir_sdk.model.bottleneck import concept_activations


def test_invisible_concept_is_dropped_and_reported() -> None:
    x, _, names, text, _ = make_world(300, seed=2)
    rng = np.random.default_rng(0)
    # A concept that no image expresses: its text embedding is orthogonal to the data's span.
    q, _ = np.linalg.qr(np.concatenate([text.T, rng.normal(size=(text.shape[1], 1))], axis=1))
    hidden = q[:, -1].astype(np.float32)
    b = ConceptBottleneck()
    b.fit(x[:250], x[250:], np.vstack([text, hidden]), [*names, "invisible thing"], progress=False)
    assert "invisible thing" in b.report.dropped_not_visible
    assert "invisible thing" not in b.concepts
    assert len(b.concepts) == len(names)


def test_absolute_visibility_cutoff_that_drops_everything_is_a_clear_error() -> None:
    x, _, names, text, _ = make_world(100, seed=2)
    with pytest.raises(BadInputError, match="visibility_cutoff"):
        ConceptBottleneck(BottleneckConfig(visibility_cutoff=1.5)).fit(x[:80], x[80:], text, names, progress=False)


def test_untrained_random_projection_fails_interpretability_cutoff_clearly() -> None:
    x, _, names, text, _ = make_world(100, seed=2)
    cfg = BottleneckConfig(init="random", max_steps=1, interpretability_cutoff=0.999)
    with pytest.raises(BadInputError, match="interpretability cutoff"):
        ConceptBottleneck(cfg).fit(x[:80], x[80:], text, names, progress=False)


def test_random_init_training_improves_validation_similarity() -> None:
    x, _, names, text, _ = make_world(300, seed=4)
    cfg = BottleneckConfig(init="random", max_steps=150, interpretability_cutoff=0.0)
    b = ConceptBottleneck(cfg).fit(x[:250], x[250:], text, names, progress=False)
    assert b.report.best_step > 0
    assert b.report.best_val_similarity > b.report.initial_val_similarity + 0.3


def test_zscores_use_training_statistics(fitted: CEIRModel, world: tuple[Any, ...]) -> None:
    x = world[0]
    train_idx, _ = fitted.split_indices(len(x))
    z = fitted.encode_features(x[train_idx], output="concepts")
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.01)


def test_activations_are_cosine_similarities() -> None:
    x, _, _, text, _ = make_world(20, seed=5)
    p = concept_activations(x * 7.0, text * 3.0)
    assert p.shape == (20, len(text))
    assert np.all(np.abs(p) <= 1.0 + 1e-6)
    ref = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (text / np.linalg.norm(text, axis=1, keepdims=True)).T
    np.testing.assert_allclose(p, ref, atol=1e-5)


def test_model_selection_sees_only_training_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The validation rows passed to every selection step are a subset of the fit data; the
    evaluation split cannot enter because fit has no way to receive it."""
    x, _, names, text, _ = make_world(200, seed=6)
    seen: dict[str, np.ndarray] = {}
    original = ConceptBottleneck.fit

    def spy(self: ConceptBottleneck, f: np.ndarray, fv: np.ndarray, *a: Any, **k: Any) -> Any:
        seen["train"], seen["val"] = f.copy(), fv.copy()
        return original(self, f, fv, *a, **k)

    monkeypatch.setattr(ConceptBottleneck, "fit", spy)
    m = CEIRModel(backbone=None, latent="identity", seed=1)
    m.fit_features(x, names, concept_embeddings=text, progress=False)
    rows = {r.tobytes() for r in x.astype(np.float32)}
    assert all(r.tobytes() in rows for r in seen["val"])
    assert not {r.tobytes() for r in seen["val"]} & {r.tobytes() for r in seen["train"]}
    assert len(seen["train"]) + len(seen["val"]) == len(x)
    assert m.provenance["n_validation"] == len(seen["val"]) >= 2
