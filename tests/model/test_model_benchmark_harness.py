"""benchmarks/cluster.py's harness on small stand-in data (the real domains need local copies)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_synthetic import TinyBackbone, make_world

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("ceir_bench_cluster", ROOT / "benchmarks" / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_protocol_reports_three_methods_with_mean_and_std(bench: Any) -> None:
    # Noise low enough that cluster purity, not the harness, is never what limits the naming figure.
    x, y, names, text, truth = make_world(500, seed=11, noise=0.3)
    report, models = bench.evaluate_protocol(
        x[:350], x[350:], y[350:], names, k=4, concept_embeddings=text, seeds=(0, 1), latent="pca",
        latent_options={"latent_dim": 4}, restarts=2)
    for method in ("ceir", "raw_kmeans", "concept_kmeans"):
        assert set(report[method]) == {f"{m}_{s}" for m in ("nmi", "acc", "ari") for s in ("mean", "std")}
        assert 0.0 <= report[method]["acc_mean"] <= 1.0
    assert report["ceir"]["acc_mean"] > 0.7 and len(models) == 2
    gap = report["ceir_minus_raw"]
    for m in ("nmi", "acc"):
        assert gap[m]["mean"] == pytest.approx(report["ceir"][f"{m}_mean"] - report["raw_kmeans"][f"{m}_mean"])
        assert len(gap[m]["per_seed"]) == 2 and gap[m]["std_error"] >= 0.0
    truth_names = [{names[c] for c in t} for t in truth[350:]]
    p5 = bench.explain_precision_at_5(models[0], x[350:400], truth_names[:50])
    assert 0.5 <= p5["present"] <= 1.0 and p5["max_completeness_error"] <= 0.01
    naming = bench.cluster_name_accuracy(models[0], x[350:], y[350:], truth_names, 4)
    assert naming["accuracy"] >= 0.75 and naming["name_true_share"] >= 0.75


def test_class_names_variant_adds_only_missing_names_and_reports_the_gap(bench: Any) -> None:
    x, y, names, text, _ = make_world(400, seed=5, noise=0.3)
    class_names = ["class a", "class a", names[0], "class b"]  # a repeat and a name already a concept
    class_text = np.stack([text[0] + text[1], text[0] + text[1], text[0], text[6] + text[7]])
    named = bench.with_class_names(
        x[:300], x[300:], y[300:], names, class_names, concept_embeddings=text, class_name_embeddings=class_text,
        k=4, seeds=(0, 1), latent="pca", latent_options={"latent_dim": 4}, restarts=2)
    assert named["class_names_added"] == 2 and named["concepts_given"] == len(names) + 2
    # the embeddings that travel with the added names are theirs, not their neighbours'
    seen: list[Any] = []
    real_protocol = bench.evaluate_protocol

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((args[3], kwargs["concept_embeddings"]))
        return real_protocol(*args, **kwargs)

    bench.evaluate_protocol = spy
    try:
        bench.with_class_names(x[:300], x[300:], y[300:], names, class_names, concept_embeddings=text,
                               class_name_embeddings=class_text, k=4, seeds=(0,), latent="pca",
                               latent_options={"latent_dim": 4}, restarts=1)
    finally:
        bench.evaluate_protocol = real_protocol
    concepts_seen, embeddings_seen = seen[0]
    assert concepts_seen[-2:] == ["class a", "class b"]
    np.testing.assert_allclose(embeddings_seen[-2:], class_text[[0, 3]])
    for method in ("ceir", "concept_kmeans"):
        assert 0.0 <= named[method]["acc_mean"] <= 1.0
    assert len(named["ceir_minus_raw"]["acc"]["per_seed"]) == 2
    with pytest.raises(ValueError, match="class_name_embeddings"):
        bench.with_class_names(x[:300], x[300:], y[300:], names, class_names, concept_embeddings=text, k=4)


def test_nonstandard_runs_must_name_their_output(bench: Any) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--seeds", "3", "--skip-speed"])


def test_paired_difference_tells_a_gap_from_seed_noise(bench: Any) -> None:
    base = [{"nmi": 0.5, "acc": 0.80}, {"nmi": 0.6, "acc": 0.82}, {"nmi": 0.4, "acc": 0.81}]
    steady = [{"nmi": r["nmi"] + 0.05, "acc": r["acc"] + d} for r, d in zip(base, (0.010, 0.012, 0.011))]
    noisy = [{"nmi": r["nmi"], "acc": r["acc"] + d} for r, d in zip(base, (0.02, -0.03, 0.012))]
    gap = bench.paired_difference(steady, base)
    assert gap["acc"]["mean"] == pytest.approx(0.011) and not gap["acc"]["within_noise"]
    assert gap["nmi"]["std_error"] == pytest.approx(0.0, abs=1e-12)
    assert bench.paired_difference(noisy, base)["acc"]["within_noise"]


def test_labelled_domain_harness_on_stand_in_images(bench: Any) -> None:
    rng = np.random.default_rng(0)

    def load_split(split: str) -> tuple[list[tuple[np.ndarray, int]], np.ndarray]:
        labels = rng.integers(0, 3, size=60)
        # Class c is bright in channel c: easy to separate even for the tiny backbone.
        images = rng.integers(0, 60, size=(60, 12, 12, 3)).astype(np.uint8)
        images[np.arange(60), :, :, labels] += 180
        return [(im, int(lab)) for im, lab in zip(images, labels)], labels

    report = bench.run_labelled_domain(
        "stand-in", load_split, TinyBackbone(), ["red", "green", "blue", "dark", "bright"], 3, (0,),
        {"class_names_in_prompts": False, "class_names_in_concepts": False})
    assert report["status"] == "ran" and report["n_test"] == 60
    assert report["label_information"]["class_names_in_concepts"] is False
    assert set(report) >= {"ceir", "raw_kmeans", "concept_kmeans"}


def test_missing_torchvision_copies_are_reported_plainly(
    bench: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEIR_DATA_ROOT", str(tmp_path))
    out = bench.run_torchvision((0,), None)
    assert set(out) == {"cifar10", "cifar100_20", "stl10"}
    for entry in out.values():
        assert entry["status"] == "not run" and "CEIR_DATA_ROOT" in entry["reason"]
    assert bench.CIFAR100_COARSE.shape == (100,) and set(bench.CIFAR100_COARSE) == set(range(20))


def test_name_scores_counts_ties_at_the_cut_and_the_share_the_name_is_true_of(bench: Any) -> None:
    # cluster 0: six images, five of class 0. Every class-0 image shows "insect" and "animal";
    # "round" and "dotted round" four times; "red", "small", "dotted" three times.
    clusters = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    common = {"insect", "animal"}
    truth = [
        common | {"round", "dotted round", "red", "small", "dotted"},
        common | {"round", "dotted round", "red", "small", "dotted"},
        common | {"round", "dotted round", "red", "small", "dotted"},
        common | {"round", "dotted round"},
        common,
        {"oval"},
        {"oval", "striped"},
        {"oval", "striped"},
    ]
    # "dotted round" ties with "round" at the 4th count: frequent, whatever the order
    assert bench.name_scores(clusters, ["dotted round", "oval"], labels, truth, top_true=4)["accuracy"] == 1.0
    # "red" (3 of 5) is below the 4th-highest count (4): not frequent
    scores = bench.name_scores(clusters, ["red", "striped"], labels, truth, top_true=4)
    assert scores["accuracy"] == 0.5
    assert scores["name_true_share"] == pytest.approx((3 / 5 + 2 / 2) / 2)  # cluster 1: both of class 1 striped
    # by parts: a description counts when all its parts are frequent
    parts = {"red dotted": frozenset({"red", "dotted"}), "round insect": frozenset({"round", "insect"})}
    by_parts = bench.name_scores(clusters, ["round insect", None], labels, truth, top_true=4, parts=parts)
    assert by_parts == {"accuracy": 1.0, "name_true_share": 4 / 5}
    assert bench.name_scores(clusters, ["red dotted", None], labels, truth, top_true=4, parts=parts)["accuracy"] == 0.0


def test_linear_probe_reads_class_information_and_only_that(bench: Any) -> None:
    x, y, _, _, _ = make_world(500, seed=12, noise=0.3)
    assert bench.linear_probe_accuracy(x[:350], y[:350], x[350:], y[350:]) >= 0.9
    shuffled = np.random.default_rng(0).permutation(y)
    assert bench.linear_probe_accuracy(x[:350], shuffled[:350], x[350:], shuffled[350:]) <= 0.45  # chance: 0.25
