"""A concept model apart from the backbone (issue 25): the projection learns another model's
concept scores from a random start, both pruning stages act, and the same-CLIP shortcut is said.

Synthetic features give known learnable / unlearnable / invisible concepts; two tiny real
open_clip architectures of different widths (random weights) run the real fit, save, load and
text path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_synthetic import make_world

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.concepts.text_scale import concept_scores, standardise_text_activations, text_statistics
from ceir_sdk.errors import BadInputError
from ceir_sdk.model import CEIRModel
from ceir_sdk.model.bottleneck import ZERO_SHOT_NOTE

PCA = {"latent_dim": 4}


def _two_models(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, list[str]]]:
    """(backbone features (n, 16), concept-model features (n, 13), concept texts (C, 13), names, kinds).

    The concept model's first 8 dimensions are a linear function of the backbone's, its next 4
    are noise the backbone never sees, and its last is almost constant. So concepts written in
    the first 8 are learnable, those in the next 4 are visible but not learnable, and those on
    the last dimension are not visible (their best images barely match them)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    mix = rng.normal(size=(16, 8)).astype(np.float32) / 4.0
    y = np.concatenate([x @ mix, rng.normal(size=(n, 4)), 0.01 * rng.normal(size=(n, 1))], axis=1).astype(np.float32)
    texts, names = [], []
    kinds: dict[str, list[str]] = {"learnable": [], "unlearnable": [], "invisible": []}
    for kind, dims, count in (("learnable", slice(0, 8), 6), ("unlearnable", slice(8, 12), 3),
                              ("invisible", slice(12, 13), 2)):
        for i in range(count):
            t = np.zeros(13, np.float32)
            t[dims] = rng.normal(size=t[dims].shape)
            if kind == "invisible":
                t[12], t[:12] = 1.0, 0.0
                t[i] = 0.05  # two distinct phrases on the near-constant dimension
            texts.append(t / np.linalg.norm(t))
            names.append(f"{kind} {i}")
            kinds[kind].append(names[-1])
    return x, y, np.stack(texts), names, kinds


def test_random_init_projection_learns_another_models_scores_and_prunes_what_it_cannot() -> None:
    x, y, text, names, kinds = _two_models(700)
    model = CEIRModel(backbone=None, latent="pca", latent_options=PCA, seed=0,
                      bottleneck={"visibility_cutoff": "reference"})
    model.fit_features(x, names, concept_embeddings=text, concept_features=y, progress=False)
    rep = model.provenance["bottleneck"]
    assert rep["targets"] == "concept model" and rep["init"] == "random"
    assert not rep["projection_is_zero_shot"] and "zero-shot" not in rep["note"]
    assert rep["steps_run"] > 0 and rep["best_step"] > 0
    # from a random start (near zero) to a projection that reproduces the learnable concepts
    assert rep["initial_val_similarity"] < 0.2 < rep["best_val_similarity"] - 0.2
    # stage 1: the reference's 0.25 drops exactly the concepts on the near-constant dimension
    assert rep["visibility_cutoff"] == 0.25 and rep["visibility_rule"].startswith("reference")
    assert sorted(rep["dropped_not_visible"]) == kinds["invisible"]
    # stage 2: the validation split finds the concepts the backbone cannot predict
    assert sorted(rep["dropped_not_learnable"]) == kinds["unlearnable"]
    assert all(v <= 0.45 for v in rep["dropped_not_learnable"].values())
    assert "0.45" in rep["learnability_rule"] and "validation" in rep["learnability_rule"]
    assert model.concepts == kinds["learnable"]
    assert (rep["n_given"], rep["n_visible"], rep["n_kept"]) == (11, 9, 6)
    assert model.feature_dim == 16 and model.concept_text_embeddings().shape == (6, 13)
    assert model.provenance["concept_model"]["targets"] == "concept model"
    # images need only the projection; texts need the concept model, which was never given
    assert model.encode_features(x[:5], output="concepts").shape == (5, 6)
    with pytest.raises(BadInputError, match="concept_model="):
        model.encode_texts(["anything"])


def test_a_concept_model_needs_its_features_of_the_same_images() -> None:
    x, y, text, names, _ = _two_models(100)
    model = CEIRModel(backbone=None, latent="pca", latent_options=PCA)
    with pytest.raises(BadInputError, match="same training images"):
        model.fit_features(x, names, concept_embeddings=text, concept_features=y[:50], progress=False)
    with pytest.raises(BadInputError, match="concept_model="):  # targets from another width, no concept model
        model.fit_features(x, names, concept_embeddings=text, progress=False)


def test_same_clip_fit_reports_the_zero_shot_shortcut() -> None:
    x, _, names, text, _ = make_world(300, seed=4)
    model = CEIRModel(backbone=None, latent="pca", latent_options=PCA)
    model.fit_features(x, names, concept_embeddings=text, progress=False)
    rep = model.provenance["bottleneck"]
    assert rep["targets"] == "backbone" and rep["init"] == "text"
    assert rep["projection_is_zero_shot"] and rep["steps_run"] == 0
    assert rep["note"] == ZERO_SHOT_NOTE and rep["note"].startswith("projection = zero-shot scores")
    assert rep["dropped_not_learnable"] == {}  # the shortcut cannot prune: every similarity is 1


def test_random_start_on_the_same_clip_trains_towards_the_zero_shot_scores() -> None:
    x, _, names, text, _ = make_world(300, seed=4)
    model = CEIRModel(backbone=None, latent="pca", latent_options=PCA, projection_init="random")
    model.fit_features(x, names, concept_embeddings=text, progress=False)
    rep = model.provenance["bottleneck"]
    assert rep["init"] == "random" and rep["steps_run"] > 0 and not rep["projection_is_zero_shot"]
    assert "towards the zero-shot scores" in rep["note"]
    with pytest.raises(BadInputError, match="init"):
        CEIRModel(backbone=None, projection_init="zero")


# -- two real (tiny, random-weight) open_clip models of different widths ------------------------

ARCH_BACKBONE, ARCH_CONCEPTS = "ceir-cm-tiny-32", "ceir-cm-tiny-48"
CONCEPTS = ["striped fur", "green grass", "blue water", "a runway", "feathers", "red brick wall", "snow",
            "a wooden table", "clouds in the sky", "metal wheels", "sand", "leaves"]


@pytest.fixture(scope="module")
def open_clip_archs(tmp_path_factory: pytest.TempPathFactory) -> None:
    open_clip = pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("cm_open_clip_configs")
    for name, width in ((ARCH_BACKBONE, 32), (ARCH_CONCEPTS, 48)):
        cfg = {"embed_dim": width,
               "vision_cfg": {"image_size": 32, "layers": 1, "width": width, "patch_size": 8, "head_width": 16},
               "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": width, "heads": 2, "layers": 1}}
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)


@pytest.fixture
def clip_host(vae_host: ceir_plugins.PluginHost, open_clip_archs: None, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> ceir_plugins.PluginHost:
    import ceir_open_clip.plugin

    monkeypatch.setenv("CEIR_FEATURE_CACHE", str(tmp_path / "feature-cache"))
    vae_host.register(ceir_open_clip.plugin, name="open-clip")
    return vae_host


def _images(n: int, seed: int) -> list[Any]:
    from ceir_sdk.worlds import World

    world = World("world10", image_size=32)
    return list(next(world.batches(n, split="train" if seed == 0 else "test", batch_size=n)).images)


def test_open_clip_backbone_learns_a_wider_open_clip_concept_model(clip_host: Any, tmp_path: Path) -> None:
    images = _images(120, seed=0)
    model = CEIRModel(f"open-clip:{ARCH_BACKBONE}", concept_model=f"open-clip:{ARCH_CONCEPTS}", latent="pca",
                      latent_options=PCA, bottleneck={"interpretability_cutoff": 0.2})
    model.fit(images, CONCEPTS, progress=False)
    rep = model.provenance["bottleneck"]
    assert rep["targets"] == "concept model" and rep["init"] == "random" and rep["steps_run"] > 0
    assert rep["best_val_similarity"] > rep["initial_val_similarity"]
    assert model.feature_dim == 32 and model.concept_text_embeddings().shape[1] == 48  # widths differ
    assert model.provenance["concept_model"]["spec"]["name"] == f"open-clip:{ARCH_CONCEPTS}"

    # Text queries go through the concept model's text tower, scored as the targets were.
    queries = ["striped fur", "a photo of snow"]
    tower = model.concept_model.encode_texts(queries)
    kept = model.concept_text_embeddings()
    expected = standardise_text_activations(concept_scores(tower, kept), *text_statistics(concept_scores(kept, kept)))
    concepts, latent = model.encode_texts(queries)
    np.testing.assert_allclose(concepts, expected, atol=1e-5)
    assert latent.shape == (2, 4)

    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["concept_targets"] == "concept model"
    assert saved["concept_model"]["name"] == f"open-clip:{ARCH_CONCEPTS}"
    loaded = CEIRModel.load(tmp_path / "m")  # both models rebuilt from their saved names
    held_out = _images(12, seed=1)
    np.testing.assert_allclose(loaded.encode(held_out, progress=False), model.encode(held_out, progress=False),
                               atol=1e-5)
    np.testing.assert_allclose(loaded.encode_texts(queries, output="concepts"), concepts, atol=1e-5)


def test_the_backbone_named_as_concept_model_is_the_zero_shot_shortcut(clip_host: Any) -> None:
    images = _images(60, seed=0)
    model = CEIRModel(f"open-clip:{ARCH_BACKBONE}", concept_model=f"open-clip:{ARCH_BACKBONE}", latent="pca",
                      latent_options=PCA)
    model.fit(images, CONCEPTS, progress=False)
    rep = model.provenance["bottleneck"]
    assert model.concept_model is None and model.provenance["concept_model"]["same_as_backbone"]
    assert rep["projection_is_zero_shot"] and rep["steps_run"] == 0
    assert rep["note"].startswith("projection = zero-shot scores")


def test_ceir_fit_with_a_concept_model(clip_host: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ceir_sdk.cli.main import build

    cli = build()
    args = ["fit", str(tmp_path / "m"), "--dataset", "world10", "-n", "80", "--backbone", f"open-clip:{ARCH_BACKBONE}",
            "--concept-model", f"open-clip:{ARCH_CONCEPTS}", "--latent", "pca", "--latent-option", "latent_dim=4",
            "--visibility-cutoff", "auto"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "trained towards the concept model's scores from a random start" in result.output
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["concept_model"]["name"] == f"open-clip:{ARCH_CONCEPTS}"
    assert saved["provenance"]["bottleneck"]["visibility_rule"].startswith("auto")
    # a random-weight CLIP's cosines stay far below the reference's 0.25: that cutoff drops every concept
    refused = CliRunner().invoke(cli, ["fit", str(tmp_path / "m3"), *args[2:-1], "reference"])
    assert refused.exit_code != 0 and "no concept is visible" in str(refused.exception)

    same = CliRunner().invoke(cli, ["fit", str(tmp_path / "m2"), "--dataset", "world10", "-n", "40", "--backbone",
                                    f"open-clip:{ARCH_BACKBONE}", "--latent", "pca", "--latent-option",
                                    "latent_dim=4"], catch_exceptions=False)
    assert same.exit_code == 0, same.output
    assert "projection = zero-shot scores" in same.output and "steps_run 0" in same.output


def test_open_world_extraction_offers_the_references_rule(fitted: CEIRModel, world: tuple[Any, ...]) -> None:
    x = world[0][:6]
    by_activation = fitted.extract_concepts(features=x, top_k=3, progress=False)
    assert all(len(row) == 3 for row in by_activation)
    by_reference = fitted.extract_concepts(features=x, rule="reference", top_k=None, progress=False)
    z = fitted.encode_features(x, output="concepts")
    for i, (row, explanation) in enumerate(zip(by_reference, fitted.explain(features=x, progress=False),
                                                strict=True)):
        product = z[i] * explanation.contributions
        assert {name for name, _ in row} == {fitted.concepts[j] for j in np.flatnonzero(np.abs(product) > 0.05)}
        assert [abs(v) for _, v in row] == sorted((abs(v) for _, v in row), reverse=True)
    with pytest.raises(BadInputError, match="rule"):
        fitted.extract_concepts(features=x, rule="ig")


def test_cluster_benchmark_runs_the_separate_concept_model_configuration() -> None:
    """benchmarks/cluster.py's --concept-model block on stand-in data: pruning counts per seed and
    a per-seed pairing with the same-CLIP configuration."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("ceir_bench_cluster_cm", root / "benchmarks" / "cluster.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    x, y, text, names, _ = _two_models(1000)
    labels = np.random.default_rng(0).integers(0, 3, 1000)
    common = {"k": 3, "seeds": (0, 1), "latent": "pca", "latent_options": PCA, "restarts": 2}
    separate, _ = bench.evaluate_protocol(x[:800], x[800:], labels[800:], names, concept_embeddings=text,
                                          train_concept_features=y[:800], **common)
    pruning = separate["pruning"]
    assert pruning["targets"] == "concept model" and pruning["init"] == "random" and pruning["given"] == 11
    assert all(s > 0 for s in pruning["steps_run"]) and not pruning["projection_is_zero_shot"]
    assert pruning["kept_after_learnability"] == [6, 6] and pruning["kept_after_visibility"][0] < 11
    same, _ = bench.evaluate_protocol(x[:800], x[800:], labels[800:], [f"c{i}" for i in range(16)],
                                      concept_embeddings=np.eye(16, dtype=np.float32), **common)
    assert same["pruning"]["projection_is_zero_shot"] and same["pruning"]["steps_run"] == [0, 0]
    gap = bench.paired_difference(separate["ceir_runs"], same["ceir_runs"])
    assert len(gap["nmi"]["per_seed"]) == 2
