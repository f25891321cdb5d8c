"""Clustering benchmark (issue 5): CEIR latent vs k-means on raw features vs on concept activations.

Standard protocol: fit on the training split, evaluate once on the test split, 10 seeds (model
and k-means), mean and standard deviation of NMI / ACC / ARI. Model selection inside the fit
uses a validation split carved from the training features; the test split is only encoded.

Domains: the drawn worlds (offline, with the bundled "ceir-world" CLIP), and CIFAR-10,
CIFAR-100-20, STL-10 wherever torchvision's copies and pretrained weights exist locally (the
report says plainly when they do not). Every report states which label information entered.

    python benchmarks/cluster.py [--quick]   ->  benchmarks/results/cluster.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "cluster.json"
if str(HERE) not in sys.path:  # also when a test loads this file by path
    sys.path.insert(0, str(HERE))
WORLD_DOMAINS = ("world10", "world100_20")

# CIFAR-100 fine label -> one of the 20 official coarse superclasses.
CIFAR100_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18,
    17, 10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5,
    8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
])


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("nmi", "acc", "ari"):
        values = np.array([r[key] for r in runs], dtype=np.float64)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    return out


def paired_difference(runs: list[dict[str, float]], baseline: list[dict[str, float]]) -> dict[str, Any]:
    """Per-seed differences (runs - baseline, same seed) for NMI and ACC: mean, standard error.

    The means alone hide how much of a gap is seed noise; "within_noise" says when the mean
    difference is under two standard errors, i.e. the seeds cannot tell the two apart.
    """
    out: dict[str, Any] = {"seeds": len(runs)}
    for key in ("nmi", "acc"):
        diff = np.array([a[key] - b[key] for a, b in zip(runs, baseline)], dtype=np.float64)
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        out[key] = {"per_seed": [round(float(d), 4) for d in diff], "mean": float(diff.mean()),
                    "std_error": se, "within_noise": bool(abs(diff.mean()) < 2 * se)}
    return out


def evaluate_protocol(
    train_features: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    concepts: Sequence[str],
    *,
    k: int,
    concept_embeddings: np.ndarray | None = None,
    backbone: Any = None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    latent: str = "vae",
    latent_options: dict[str, Any] | None = None,
    restarts: int | None = None,
    progress: bool = False,
    concept_template: str | Sequence[str] = "{}",
    concept_model: Any = None,
    train_concept_features: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    """ceir / raw_kmeans / concept_kmeans scores over seeds; returns (report, fitted models).

    ``concept_model`` / ``train_concept_features``: the reference's configuration (issue 25), the
    concept targets from a separate CLIP (its image features of the training rows), the projection
    trained from a random start. Without them the targets are the backbone's own zero-shot scores."""
    from ceir_sdk.metrics import clustering_scores
    from ceir_sdk.model import CEIRModel, kmeans
    from ceir_sdk.model.cluster import DEFAULT_RESTARTS

    restarts = DEFAULT_RESTARTS if restarts is None else restarts

    runs: dict[str, list[dict[str, float]]] = {"ceir": [], "raw_kmeans": [], "concept_kmeans": []}
    models = []
    raw = test_features / np.linalg.norm(test_features, axis=1, keepdims=True)
    for seed in seeds:
        model = CEIRModel(backbone, latent=latent, latent_options=latent_options, seed=seed,
                          concept_template=concept_template, concept_model=concept_model)
        model.fit_features(train_features, list(concepts), concept_embeddings=concept_embeddings, progress=progress,
                           concept_features=train_concept_features)
        models.append(model)
        z, lat = model.encode_features(test_features, output="both")
        for name, space in (("ceir", lat), ("raw_kmeans", raw), ("concept_kmeans", z)):
            labels, _, _ = kmeans(space, k, restarts=restarts, seed=seed)
            runs[name].append(clustering_scores(test_labels, labels))
    report: dict[str, Any] = {name: _summary(r) for name, r in runs.items()}
    report["ceir_minus_raw"] = paired_difference(runs["ceir"], runs["raw_kmeans"])
    report["seeds"] = list(seeds)
    report["concepts_kept"] = len(models[0].concepts)
    report["concepts_given"] = len(concepts)
    report["bottleneck_dropped"] = {
        "not_visible": sorted(models[0].bottleneck.report.dropped_not_visible),
        "not_learnable": sorted(models[0].bottleneck.report.dropped_not_learnable),
    }
    report["pruning"] = pruning_counts(models)
    report["ceir_runs"] = runs["ceir"]  # per seed, to pair this configuration with another
    return report, models


def pruning_counts(models: Sequence[Any]) -> dict[str, Any]:
    """What each pruning stage of the bottleneck kept, per seed (the seed moves the validation split)."""
    reports = [m.bottleneck.report for m in models]
    return {"given": reports[0].n_given, "targets": reports[0].targets, "init": reports[0].init,
            "visibility_rule": reports[0].visibility_rule,
            "kept_after_visibility": [r.n_visible for r in reports],
            "kept_after_learnability": [r.n_kept for r in reports],
            "steps_run": [r.steps_run for r in reports],
            "best_val_similarity": [round(r.best_val_similarity, 4) for r in reports],
            "projection_is_zero_shot": all(r.projection_is_zero_shot for r in reports)}


def with_class_names(
    train_features: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    concepts: Sequence[str],
    class_names: Sequence[str],
    *,
    concept_embeddings: np.ndarray | None = None,
    class_name_embeddings: np.ndarray | None = None,
    **protocol: Any,
) -> dict[str, Any]:
    """The protocol again with the class names added to the concept set, as the reference code does.

    Reported beside the default (no class names) so that the size of that label leak is a
    measured figure, not a footnote. Raw k-means does not see concepts, so only the concept-based
    representations and their paired gap to raw k-means are kept.
    """
    seen = set(concepts)
    keep: list[int] = []  # positions in class_names of the first copy of each name not yet a concept
    for i, name in enumerate(class_names):
        if name not in seen:
            seen.add(name)
            keep.append(i)
    added = [class_names[i] for i in keep]
    embeddings = None
    if concept_embeddings is not None:
        if class_name_embeddings is None:
            raise ValueError("concept_embeddings given without class_name_embeddings")
        embeddings = np.concatenate([concept_embeddings, np.asarray(class_name_embeddings)[keep]])
    report, _ = evaluate_protocol(train_features, test_features, test_labels, [*concepts, *added],
                                  concept_embeddings=embeddings, **protocol)
    return {
        "ceir": report["ceir"],
        "concept_kmeans": report["concept_kmeans"],
        "ceir_minus_raw": report["ceir_minus_raw"],
        "concepts_given": len(concepts) + len(added),
        "class_names_added": len(added),
    }


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                          *, l2: float = 1e-4, steps: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression fitted on the training labels.

    A supervised diagnostic, not part of any bar: how much class information a representation
    keeps in a linearly readable form, whatever k-means makes of it. Features are standardised
    with training statistics; full-batch L-BFGS with a small L2 penalty, deterministic.
    """
    import torch

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xt = torch.from_numpy(((train_x - mean) / std).astype(np.float32))
    xv = torch.from_numpy(((test_x - mean) / std).astype(np.float32))
    yt = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    weight = torch.zeros(xt.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ weight + bias, yt) + l2 * (weight * weight).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        predicted = (xv @ weight + bias).argmax(1).numpy()
    return float((predicted == np.asarray(test_y)).mean())


# -- the drawn worlds --------------------------------------------------------------------------
def _world_features(backbone: Any, world: Any, split: str, n: int) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    feats, labels, concepts = [], [], []
    for batch in world.batches(n, split=split, batch_size=1024):
        feats.append(backbone.encode_images(batch.images, progress=False))
        labels.append(batch.labels)
        concepts.extend(batch.concepts)
    return np.concatenate(feats), np.concatenate(labels), concepts


def explain_precision_at_5(model: Any, features: np.ndarray, truth: list[Any]) -> dict[str, float]:
    """Share of the 5 top positive contributions that are true concepts of the image.

    "present": contributions of the concepts the explanation says the image shows
    (``Explanation.present``: the model's calibrated per-concept thresholds, and a description
    only with the concepts among its words), i.e. the concepts an explanation names positively;
    "any_sign": the 5 largest positive contributions whatever the activation (a positive
    contribution from an absent concept reads "NOT x" and counts as a miss).
    """
    explanations = model.explain(features=features, progress=False)
    present, any_sign = [], []
    for e, true in zip(explanations, truth):
        top = [c for c, _ in e.top_present(5)]
        present.append(np.mean([c in true for c in top]) if top else 0.0)
        top_any = e.top(5, sign="positive")
        any_sign.append(np.mean([c in true and p for c, _, p in top_any]) if top_any else 0.0)
    return {"present": float(np.mean(present)), "any_sign": float(np.mean(any_sign)),
            "max_completeness_error": float(max(e.completeness_error for e in explanations))}


def _linear_probes(model: Any, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray
                   ) -> dict[str, Any]:
    """linear_probe_accuracy of the three representations (the seed-0 model's concepts and latent)."""
    z_tr, lat_tr = model.encode_features(x_tr, output="both")
    z_te, lat_te = model.encode_features(x_te, output="both")
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    return {
        "ceir": linear_probe_accuracy(lat_tr, y_tr, lat_te, y_te),
        "raw_kmeans": linear_probe_accuracy(unit(x_tr), y_tr, unit(x_te), y_te),
        "concept_kmeans": linear_probe_accuracy(z_tr, y_tr, z_te, y_te),
        "note": "supervised diagnostic (training labels used): logistic-regression test accuracy per "
                "representation; not part of any bar",
    }


def cluster_name_accuracy(model: Any, features: np.ndarray, labels: np.ndarray, truth: list[Any], k: int,
                          top_true: int = 5, parts: dict[str, frozenset[str]] | None = None,
                          atomic_truth: list[Any] | None = None) -> dict[str, float]:
    """Share of clusters whose top-named concept is among the top_true most frequent true concepts
    of the cluster's majority class (counted over that class's images in the cluster).

    Concepts tied with the top_true-th count are among the most frequent too: class-level
    concepts (superclasses) are true of every image of a class, so without ties the cut at
    top_true would depend on dictionary order. Also returned: ``name_true_share``, the mean
    share of the majority class's images in the cluster of which the name is true.

    With ``parts`` and ``atomic_truth`` (a diagnostic reading, not the issue's figure): a
    descriptive name ("red dotted round") counts when every part it asserts is among the
    top_true most frequent atomic concepts. The strict reading ranks the name against ~30 true
    phrases per image, where three-part descriptions are always rarer than their parts.
    """
    result = model.cluster(features=features, k=k, seed=0, progress=False)
    by_parts = atomic_truth is not None
    return name_scores(result.labels, [n[0][0] if n else None for n in result.names], labels,
                       atomic_truth if by_parts else truth, top_true, parts if by_parts else None)


def name_scores(clusters: np.ndarray, top_names: Sequence[str | None], labels: np.ndarray, truth: Sequence[Any],
                top_true: int = 5, parts: dict[str, frozenset[str]] | None = None) -> dict[str, float]:
    """cluster_name_accuracy's arithmetic: ``top_names[c]`` is cluster c's top name (None when
    unnamed), ``truth[i]`` image i's true concepts, ``parts`` the atomic parts of descriptive
    names (when given, a name counts when all its parts are frequent)."""
    hits, true_share = [], []
    for c, top in enumerate(top_names):
        members = np.flatnonzero(clusters == c)
        if len(members) == 0 or not top:
            continue
        majority = np.bincount(labels[members]).argmax()
        of_majority = members[labels[members] == majority]
        counts: dict[str, int] = {}
        for i in of_majority:
            for concept in truth[i]:
                counts[concept] = counts.get(concept, 0) + 1
        ranked = sorted(counts.values(), reverse=True)
        cut = ranked[min(top_true, len(ranked)) - 1]
        frequent = {concept for concept, n in counts.items() if n >= cut}
        needed = (parts or {}).get(top, frozenset({top}))
        hits.append(needed <= frequent)
        true_share.append(float(np.mean([needed <= set(truth[i]) for i in of_majority])))
    return {"accuracy": float(np.mean(hits)), "name_true_share": float(np.mean(true_share))}


def run_worlds(backbone: Any, n_train: int, n_test: int, seeds: Sequence[int], include_class_names: bool,
               n_explain: int, descriptive: bool = True,
               concept_template: str | Sequence[str] = "{}",
               domains: Sequence[str] = WORLD_DOMAINS, concept_model: Any = None) -> dict[str, Any]:
    from ceir_sdk.model.world_concepts import label_information, oracle_concepts
    from ceir_sdk.worlds import World
    from ceir_sdk.worlds.descriptions import description_parts, expand_truth

    out: dict[str, Any] = {}
    for domain in domains:
        t0 = time.perf_counter()
        world = World(domain, image_size=32, seed=0)
        x_tr, y_tr, _ = _world_features(backbone, world, "train", n_train)
        x_te, y_te, truth = _world_features(backbone, world, "test", n_test)
        # descriptive concepts ("red dotted") are true where all their parts are
        parts = description_parts(world)
        atomic_truth = truth
        truth = [expand_truth(frozenset(t), parts) for t in truth]
        concepts = oracle_concepts(world, include_class_names=include_class_names, descriptive=descriptive)
        report, models = evaluate_protocol(x_tr, x_te, y_te, concepts, k=world.num_classes, backbone=backbone,
                                           seeds=seeds, concept_template=concept_template)
        report["explain_precision_at_5"] = explain_precision_at_5(models[0], x_te[:n_explain], truth[:n_explain])
        report["linear_probe_acc"] = _linear_probes(models[0], x_tr, y_tr, x_te, y_te)
        naming = cluster_name_accuracy(models[0], x_te, y_te, truth, world.num_classes)
        report["cluster_name_accuracy"] = naming["accuracy"]
        report["cluster_name_true_share"] = naming["name_true_share"]
        report["cluster_name_accuracy_by_parts"] = cluster_name_accuracy(
            models[0], x_te, y_te, truth, world.num_classes, parts=parts, atomic_truth=atomic_truth)["accuracy"]
        report["label_information"] = label_information(include_class_names=include_class_names)
        if not include_class_names:
            # METHOD.md: class names in the concept set are off by default and reported both ways.
            report["with_class_names"] = with_class_names(
                x_tr, x_te, y_te, concepts, world.class_names, k=world.num_classes, backbone=backbone,
                seeds=seeds, concept_template=concept_template)
            report["with_class_names"]["label_information"] = label_information(include_class_names=True)
        if concept_model is not None:
            report["separate_concept_model"] = separate_concept_model_block(
                report, concept_model, world, x_tr, x_te, y_te, concepts, backbone=backbone, seeds=seeds,
                concept_template=concept_template, n_train=n_train)
        report["concept_set"] = {"n_given": len(concepts), "descriptive_phrases": descriptive,
                                 "concept_template": concept_template}
        report["n_train"], report["n_test"], report["k"] = n_train, n_test, world.num_classes
        report["seconds"] = time.perf_counter() - t0
        out[domain] = report
        print(f"{domain}: " + "  ".join(f"{m} nmi={report[m]['nmi_mean']:.3f} acc={report[m]['acc_mean']:.3f}"
                                         for m in ("ceir", "raw_kmeans", "concept_kmeans")), flush=True)
        if "with_class_names" in report:
            named = report["with_class_names"]
            print(f"{domain} with class names: " + "  ".join(
                f"{m} nmi={named[m]['nmi_mean']:.3f} acc={named[m]['acc_mean']:.3f}"
                for m in ("ceir", "concept_kmeans")), flush=True)
    return out


def separate_concept_model_block(same: dict[str, Any], concept_model: Any, world: Any, x_tr: np.ndarray,
                                 x_te: np.ndarray, y_te: np.ndarray, concepts: Sequence[str], *, backbone: Any,
                                 seeds: Sequence[int], concept_template: str | Sequence[str],
                                 n_train: int) -> dict[str, Any]:
    """The reference's configuration beside the same-CLIP one: the concept model encodes the same
    training images, the backbone's projection learns its scores from a random start. Same seeds,
    test rows and concepts, so ``separate_minus_same`` pairs the two by seed."""
    c_tr, _, _ = _world_features(concept_model, world, "train", n_train)
    block, _ = evaluate_protocol(x_tr, x_te, y_te, concepts, k=world.num_classes, backbone=backbone, seeds=seeds,
                                 concept_template=concept_template, concept_model=concept_model,
                                 train_concept_features=c_tr)
    block["concept_model"] = concept_model.spec()
    block["separate_minus_same"] = paired_difference(block["ceir_runs"], same["ceir_runs"])
    print(f"  separate concept model {concept_model.spec().get('name')}: ceir nmi={block['ceir']['nmi_mean']:.3f} "
          f"acc={block['ceir']['acc_mean']:.3f}; kept {block['pruning']['kept_after_learnability']} of "
          f"{block['pruning']['given']}", flush=True)
    return block


def verdict(result: dict[str, Any], domains: Sequence[str]) -> dict[str, Any]:
    """CEIR's claim, paired by seed: the latent ahead of raw k-means on NMI and ACC by more than two
    standard errors of the per-seed difference, per domain, without and with class names."""
    from ceir_sdk.worlds.nuisance import WORLD_VERSION

    out: dict[str, Any] = {"world_version": WORLD_VERSION,
                           "bar": "ceir - raw_kmeans > 2 paired standard errors on NMI and ACC, on every domain"}
    met = True
    for d in domains:
        for label, block in (("", result[d]), ("_with_class_names", result[d].get("with_class_names")),
                             ("_separate_concept_model", result[d].get("separate_concept_model"))):
            if not block or "ceir_minus_raw" not in block:
                continue
            gaps = block["ceir_minus_raw"]
            row = {m: {"mean": round(gaps[m]["mean"], 4), "std_error": round(gaps[m]["std_error"], 4),
                       "ahead_beyond_2se": bool(gaps[m]["mean"] > 2 * gaps[m]["std_error"])} for m in ("nmi", "acc")}
            row["seeds"] = gaps["seeds"]
            out[d + label] = row
            if not label:  # the bar is the default configuration's; the others are reported beside it
                met = met and all(row[m]["ahead_beyond_2se"] for m in ("nmi", "acc"))
    out["bar_met"] = met
    return out


# -- speed: fit time over extraction time -------------------------------------------------------
def fit_over_extract_time(n_extract: int, n_fit: int = 50_000, n_concepts: int = 200) -> dict[str, Any]:
    """ViT-B-32 (random weights, 512-d): fit time on n_fit features / extraction time of n_fit images
    (extrapolated from n_extract timed images), measured in one run."""
    from ceir_sdk.model import CEIRModel
    from ceir_sdk.plugins import get_backbone
    from ceir_sdk.worlds import World
    from ceir_sdk.worlds.vocabulary import AROUND, COLOURS, PATTERNS, SHAPES

    backbone = get_backbone("open-clip:ViT-B-32", cache=False)
    images = np.concatenate([b.images for b in World("world10", image_size=64).batches(n_extract, "train")])
    backbone.encode_images(images[:8], progress=False)  # warm-up (allocations, thread pools)
    t0 = time.perf_counter()
    feats = backbone.encode_images(images, batch_size=64, progress=True)
    extract_s = time.perf_counter() - t0
    phrases = [f"{a} {b}" for a in (*COLOURS, *PATTERNS) for b in (*SHAPES, *AROUND)][:n_concepts]
    # n_fit rows: the extracted features resampled with small noise (fit time depends on sizes only).
    rng = np.random.default_rng(0)
    rows = feats[rng.integers(0, len(feats), n_fit)]
    rows = rows + 0.05 * rows.std() * rng.standard_normal(rows.shape).astype(np.float32)
    model = CEIRModel(backbone)
    t0 = time.perf_counter()
    model.fit_features(rows, phrases, progress=True)
    fit_s = time.perf_counter() - t0
    extract_total = extract_s / len(images) * n_fit
    return {
        "ratio": fit_s / extract_total,
        "fit_seconds": fit_s,
        "fit_breakdown_s": model.provenance["timings_s"],
        "extract_seconds_measured": extract_s,
        "extract_images_timed": len(images),
        "extract_seconds_extrapolated": extract_total,
        "n_fit": n_fit,
        "n_concepts": len(phrases),
        "backbone": "open_clip ViT-B-32, random weights, 512-d, 224px, CPU fp32",
        "defaults": {"latent_epochs_run": model.provenance["latent_history"].get("epochs_run"),
                     "projection_steps_run": model.provenance["bottleneck"]["steps_run"]},
    }


# -- CIFAR-10, CIFAR-100-20, STL-10 -------------------------------------------------------------
TORCHVISION_DOMAINS: dict[str, dict[str, Any]] = {
    "cifar10": {"backbone": "open-clip:ViT-L-14/openai", "k": 10},
    "cifar100_20": {"backbone": "open-clip:RN50/openai", "k": 20},
    "stl10": {"backbone": "open-clip:ViT-B-16/openai", "k": 10},
}


def load_torchvision_split(name: str, root: Path, split: str) -> tuple[Any, np.ndarray]:
    """(dataset, labels) from torchvision's local copy; raises FileNotFoundError when absent."""
    import torchvision.datasets as tvd

    train = split == "train"
    try:
        if name == "cifar10":
            ds = tvd.CIFAR10(str(root), train=train, download=False)
            labels = np.asarray(ds.targets)
        elif name == "cifar100_20":
            ds = tvd.CIFAR100(str(root), train=train, download=False)
            labels = CIFAR100_COARSE[np.asarray(ds.targets)]
        else:
            ds = tvd.STL10(str(root), split="train" if train else "test", download=False)
            labels = np.asarray(ds.labels)
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(f"{name} not found under {root}: {exc}") from exc
    return ds, labels


def run_labelled_domain(
    name: str, load_split: Callable[[str], tuple[Any, np.ndarray]], backbone: Any, concepts: Sequence[str], k: int,
    seeds: Sequence[int], label_info: dict[str, Any], limit: int | None = None,
) -> dict[str, Any]:
    """The protocol on any labelled image domain: fit on train, evaluate on test."""
    feats: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        ds, y = load_split(split)
        n = len(y) if limit is None else min(limit, len(y))
        images = [np.asarray(ds[i][0]) for i in range(n)]
        feats[split] = backbone.encode_images(np.stack(images), progress=False)
        labels[split] = y[:n]
    report, _ = evaluate_protocol(feats["train"], feats["test"], labels["test"], concepts, k=k,
                                  backbone=backbone, seeds=seeds)
    report.update(status="ran", domain=name, label_information=label_info,
                  n_train=len(labels["train"]), n_test=len(labels["test"]))
    return report


def run_torchvision(seeds: Sequence[int], concept_file: Path | None) -> dict[str, Any]:
    root = Path(os.environ.get("CEIR_DATA_ROOT", Path.home() / ".cache" / "torchvision"))
    out: dict[str, Any] = {}
    for name, cfg in TORCHVISION_DOMAINS.items():
        try:
            load_torchvision_split(name, root, "test")
        except (FileNotFoundError, ImportError) as exc:
            out[name] = {"status": "not run", "reason": f"no local torchvision copy ({exc}); set CEIR_DATA_ROOT"}
            continue
        if concept_file is None:
            out[name] = {"status": "not run", "reason": "no concept file for this domain (--concepts-dir)"}
            continue
        try:
            from ceir_sdk.plugins import get_backbone

            backbone = get_backbone(cfg["backbone"])
        except Exception as exc:  # report, do not crash the benchmark
            out[name] = {"status": "not run", "reason": f"pretrained weights {cfg['backbone']} unavailable: {exc}"}
            continue
        concepts = [c for c in concept_file.read_text().splitlines() if c.strip()]
        out[name] = run_labelled_domain(
            name, lambda s, n=name: load_torchvision_split(n, root, s), backbone, concepts, cfg["k"], seeds,
            {"class_names_in_prompts": True, "class_names_in_concepts": False,
             "note": "concepts generated by an LLM from the class names"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not the figures)")
    parser.add_argument("--out", type=Path, default=None, help=f"default: {RESULT.name} (--quick: quick/{RESULT.name})")
    parser.add_argument("--backbone", default="open-clip:ceir-world")
    parser.add_argument("--include-class-names", action="store_true")
    parser.add_argument("--concept-template", action="append", default=None,
                        help="how concepts are phrased for the text encoder ('{}' = as is, like the paper); "
                             "repeat to average several (default: the world CLIP's pair, see world_concepts.py)")
    parser.add_argument("--atomic-concepts", action="store_true",
                        help="single attributes only, without the LLM-like descriptions ('red dotted')")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds (default 10, or 2 with --quick); more seeds narrow the paired gaps")
    parser.add_argument("--domain", action="append", choices=WORLD_DOMAINS, default=None,
                        help="run only this world domain (repeatable); the top-level figures then cover it alone")
    parser.add_argument("--concepts-dir", type=Path, default=None, help="concept files NAME.txt for CIFAR/STL")
    parser.add_argument("--concept-model", default=None,
                        help="also run the reference's configuration per world domain: concept targets from this "
                             "separate CLIP (a backbone name), the projection trained from a random start; "
                             "reported beside the same-CLIP figures with paired gaps (slow: up to 1,000 "
                             "full-batch projection steps per seed)")
    args = parser.parse_args(argv)
    from ceir_sdk.model.cluster import DEFAULT_RESTARTS
    from ceir_sdk.model.world_concepts import WORLD_CONCEPT_TEMPLATES
    from ceir_sdk.plugins import get_backbone

    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    seeds = tuple(range(args.seeds if args.seeds is not None else (2 if args.quick else 10)))
    domains = tuple(dict.fromkeys(args.domain or WORLD_DOMAINS))
    standard = args.seeds is None and args.domain is None
    if args.out is None and not standard:
        parser.error("--seeds and --domain change the protocol: give --out, so that the standard figures in "
                     f"{RESULT.name} are not overwritten")
    from _results import result_path

    out_path = result_path("cluster", args.quick, args.out)
    n_train, n_test = (2000, 1000) if args.quick else (10_000, 5_000)
    result: dict[str, Any] = {
        "benchmark": "cluster", "quick": args.quick, "protocol": "fit on train (validation carved from train), "
        "evaluate on test once; seeds for model and k-means; k = number of classes; "
        f"k-means: faiss, best of {DEFAULT_RESTARTS} restarts from greedy k-means++ seeds",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "backbone": args.backbone, "world_domains_run": list(domains), "seeds": list(seeds),
    }
    try:
        backbone = get_backbone(args.backbone)
        concept_model = None if args.concept_model is None else get_backbone(args.concept_model)
        result["concept_model"] = args.concept_model
        result.update(run_worlds(backbone, n_train, n_test, seeds, args.include_class_names,
                                 n_explain=200 if args.quick else 500, descriptive=not args.atomic_concepts,
                                 concept_template=args.concept_template or list(WORLD_CONCEPT_TEMPLATES),
                                 domains=domains, concept_model=concept_model))
        # Top-level figures are means over the world domains, each domain's figure kept beside it.
        for key, field in (("explain_precision_at_5", "present"), ("explain_precision_at_5_any_sign", "any_sign")):
            result[key] = float(np.mean([result[d]["explain_precision_at_5"][field] for d in domains]))
        result["cluster_name_accuracy"] = float(np.mean([result[d]["cluster_name_accuracy"] for d in domains]))
        result["cluster_name_accuracy_by_parts"] = float(
            np.mean([result[d]["cluster_name_accuracy_by_parts"] for d in domains]))
        result["cluster_name_true_share"] = float(np.mean([result[d]["cluster_name_true_share"] for d in domains]))
        result["quality_bar_met"] = all(
            result[d]["ceir"][m] > result[d]["raw_kmeans"][m] for d in domains for m in ("nmi_mean", "acc_mean"))
        result["verdict"] = verdict(result, domains)
    except Exception as exc:  # say plainly what did not run
        result["worlds_error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    if not args.skip_speed:
        speed = fit_over_extract_time(n_extract=200 if args.quick else 1000)
        result["fit_over_extract_time"] = speed["ratio"]
        result["fit_over_extract_time_detail"] = speed
    concept_file = None if args.concepts_dir is None else args.concepts_dir
    result["torchvision_domains"] = run_torchvision(seeds, concept_file)
    from _results import write_result

    write_result(out_path, result)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
