"""A description counts as present only where the concepts among its words are present too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from model_synthetic import SMALL_VAE, make_world

from ceir_sdk.concepts.generality import consistent_presence, presence_requirements
from ceir_sdk.model import CEIRModel
from ceir_sdk.model.explain import Explanation

CONCEPTS = ["red", "round", "red dotted round", "dotted", "a fruit", "round fruit", "grass"]


def test_requirements_are_the_concepts_among_a_phrases_words() -> None:
    req = presence_requirements(CONCEPTS)
    assert sorted(CONCEPTS[j] for j in req[CONCEPTS.index("red dotted round")]) == ["dotted", "red", "round"]
    assert sorted(CONCEPTS[j] for j in req[CONCEPTS.index("round fruit")]) == ["a fruit", "round"]
    assert req[CONCEPTS.index("grass")] == []


def test_a_description_is_cleared_where_a_part_is_absent() -> None:
    req = presence_requirements(CONCEPTS)
    raw = np.array([[1, 1, 1, 0, 1, 1, 1],    # not dotted: "red dotted round" cleared
                    [1, 1, 1, 1, 0, 1, 0]],   # no "a fruit": "round fruit" cleared
                   dtype=bool)
    out = consistent_presence(raw, req)
    np.testing.assert_array_equal(out, [[1, 1, 0, 0, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(consistent_presence(raw[0], req), out[0])  # one row alone
    assert raw.sum() == 11  # the input is left as it was


def test_explanations_name_no_description_without_its_parts() -> None:
    z = np.array([1.0, 1.0, 3.0, -1.0, 0.0, 0.0, 0.5], dtype=np.float32)
    contributions = np.array([0.1, 0.2, 0.9, 0.0, 0.0, 0.0, 0.05], dtype=np.float32)
    common = dict(output=1.25, baseline_output=0.0, target="self", steps=8,
                  presence_thresholds=np.full(len(CONCEPTS), 0.5, dtype=np.float32))
    plain = Explanation(list(CONCEPTS), contributions, z, **common)
    by_parts = Explanation(list(CONCEPTS), contributions, z, **common,
                           presence_requirements=presence_requirements(CONCEPTS))
    assert plain.top_present(1)[0][0] == "red dotted round"
    assert [c for c, _ in by_parts.top_present(3)] == ["round", "red", "grass"]


def test_fitted_models_apply_the_rule_and_keep_the_switch_when_saved(tmp_path: Path) -> None:
    x, _, _, text, _ = make_world(300, n_concepts=8, seed=4)
    names = ["red", "round", "red round", "dotted", "striped", "oval", "striped oval", "grass"]
    model = CEIRModel(backbone=None, latent_options=SMALL_VAE, seed=0)
    model.fit_features(x, names, concept_embeddings=text, progress=False)
    explanations = model.explain(features=x[:60], progress=False)
    both = [dict(zip(e.concepts, e.present, strict=True)) for e in explanations]
    for shown in both:
        if shown.get("red round"):
            assert shown["red"] and shown["round"]
        if shown.get("striped oval"):
            assert shown["striped"] and shown["oval"]
    model.presence_by_parts = False
    assert model.presence_requirements() is None
    unchecked = [dict(zip(e.concepts, e.present, strict=True)) for e in model.explain(features=x[:60], progress=False)]
    # the calibrated thresholds alone do mark the description without its parts here
    assert any(s["red round"] and not (s["red"] and s["round"]) for s in unchecked)
    model.save(tmp_path / "m")
    assert CEIRModel.load(tmp_path / "m").presence_by_parts is False
