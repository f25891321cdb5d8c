"""ConceptIndex at scale and on the concept world; writes benchmarks/results/index.json.

Scale: N clustered 128-d float32 vectors (1,000,000; --quick 100,000), index type chosen
by size (autofaiss-style), nprobe tuned for recall; recall@10 against exact search on
1,000 held-out queries, queries/s of both (batched), single-query latency through the full
API (metadata and explanations included), build time, peak RSS.

World: a CEIR model fitted on the 10-class world's training split (world CLIP backbone),
test images indexed with their concept activations; for a set of concept expressions, the
share of the top-10 whose TRUE concepts (the world's oracle) satisfy the expression. Every
ranking is scored on the same expressions, side by side: the index's default (matches where
every + concept has calibrated P(present) >= 0.5 and every - concept below it, ranked by joint
log-probability), the same ranking with the earlier z-threshold filter (+ above z = 0, -
below it), the same without any filter, calibration fitted on the training split's
activations instead, the earlier z-margin ("fuzzy AND"), a rank-based (percentile)
calibration baseline, and, for scoring only, a ceiling that calibrates each concept with the
training split's TRUE labels (isotonic regression): the best any per-concept calibration of
these activations could do. The index itself never sees labels. How well each presence rule
(z > 0, P >= 0.5) agrees with the truth per concept is recorded too (scoring only).

`--part world` reruns only the world part and merges it into the existing JSON, keeping the
scale figures with a note of the commit that measured them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _results import result_path  # noqa: E402

from ceir_sdk.atomic import sha256_file  # noqa: E402
from ceir_sdk.index import ConceptIndex, ConceptQuery, parse_expression  # noqa: E402
from ceir_sdk.index.calibration import PRESENT_PROBABILITY, PresenceCalibration  # noqa: E402
from ceir_sdk.index.persist import atomic_write_text  # noqa: E402

# Centres this close make the blobs overlap (inter-centre distance ~ point spread), so the
# nearest neighbours of a query lie in several clusters: a harder case than separated blobs.
CENTRE_SD = 0.75


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def clustered(n: int, dim: int, n_centers: int, seed: int, centers: np.ndarray | None = None) -> np.ndarray:
    """Gaussian blobs around random centres, generated in chunks (float32 only)."""
    rng = np.random.default_rng(seed)
    if centers is None:
        centers = np.random.default_rng(12345).normal(size=(n_centers, dim)).astype(np.float32) * CENTRE_SD
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        out[s:e] = centers[rng.integers(0, len(centers), e - s)]
        out[s:e] += rng.normal(size=(e - s, dim)).astype(np.float32)
    return out


def scale_part(n: int, n_queries: int, quick: bool) -> dict[str, Any]:
    dim, k = 128, 10
    t0 = time.perf_counter()
    x = clustered(n, dim, 1000, seed=1)
    q = clustered(n_queries, dim, 1000, seed=2)  # held out: not in the index
    gen_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    idx = ConceptIndex.build(x, target_recall=0.97, progress=True)
    build_s = time.perf_counter() - t0
    assert idx._store is not None

    # Exact search over the same vectors (faiss flat, BLAS), batched, and the index batched.
    flat = faiss.IndexFlatL2(dim)
    flat.add(x)
    t0 = time.perf_counter()
    _, truth = flat.search(q, k)
    exact_s = time.perf_counter() - t0
    del flat
    t0 = time.perf_counter()
    _, got = idx._store.search(q, k)
    ann_s = time.perf_counter() - t0
    recall = float(np.mean([len(set(t) & set(g)) / k for t, g in zip(truth.tolist(), got.tolist())]))

    # One query at a time through the public API (hits with metadata and explanations).
    lat_ms = []
    for i in range(min(len(q), 300 if quick else 1000)):
        t1 = time.perf_counter()
        idx.search(q[i], k)
        lat_ms.append((time.perf_counter() - t1) * 1000)
    return {
        "n_vectors": n, "dim": dim, "n_queries": n_queries, "k": k,
        "data": f"1000 overlapping gaussian blobs: points sd 1 around centres of sd {CENTRE_SD}",
        "factory": idx.factory, "tuning": idx.tuning, "nprobe": idx._store.nprobe,
        "build_seconds": round(build_s, 2), "generate_seconds": round(gen_s, 2),
        "recall_at_10": round(recall, 4),
        "exact_qps": round(n_queries / exact_s, 1), "index_qps": round(n_queries / ann_s, 1),
        "speedup_over_exact": round(exact_s / ann_s, 2),
        "latency_ms_p50": round(float(np.percentile(lat_ms, 50)), 3),
        "latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 3),
        "latency_note": "single query through ConceptIndex.search (faiss + SQLite metadata + hit objects)",
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "bars": {"recall_at_10": ">= 0.95", "speedup_over_exact": ">= 10"},
        "passed": recall >= 0.95 and exact_s / ann_s >= 10,
    }


def expressions_for(concepts: list[str], truth: list[frozenset[str]], rng: np.random.Generator,
                    n: int) -> list[str]:
    """Expressions with enough true matches in the indexed set (at least 20), mixing forms:
    +a ; +a +b ; +a -b ; +a +b -c."""
    freq = {c: sum(c in t for t in truth) for c in concepts}
    common = [c for c in concepts if freq[c] >= 40]
    out: list[str] = []
    tries = 0
    while len(out) < n and tries < 5000:
        tries += 1
        form = len(out) % 4
        pick = [str(c) for c in rng.choice(common, size=3, replace=False)]
        terms = {0: [f"+{pick[0]}"], 1: [f"+{pick[0]}", f"+{pick[1]}"], 2: [f"+{pick[0]}", f"-{pick[1]}"],
                 3: [f"+{pick[0]}", f"+{pick[1]}", f"-{pick[2]}"]}[form]
        text = " ".join(t[0] + json.dumps(t[1:]) for t in terms)
        q = parse_expression(text, concepts)
        if sum(q.satisfied_by(t) for t in truth) >= 20 and text not in out:
            out.append(text)
    return out


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _world_provenance() -> dict[str, Any]:
    """Which checkpoint and world code the world figures come from."""
    ckpt = HERE.parent / "plugins/open-clip/src/ceir_open_clip/world_model/ceir-world.safetensors"
    sha = sha256_file(ckpt) if ckpt.is_file() else None
    paths = ["plugins/open-clip/src/ceir_open_clip/world_model", "ceir_sdk/worlds"]
    return {"checkpoint": str(ckpt.relative_to(HERE.parent)), "checkpoint_sha256": sha,
            "head_commit": _git("rev-parse", "--short", "HEAD"),
            "last_commit_of_world_and_checkpoint": _git("log", "-1", "--format=%h %s", "--", *paths)[:160],
            "uncommitted_changes_in_world_or_checkpoint": _git("status", "--porcelain", "--", *paths).splitlines()}


def _isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators fit of P(y | x), non-decreasing in x: (sorted x, fitted values)."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(np.float64)
    vals: list[float] = []
    wts: list[float] = []
    for v in ys:
        vals.append(v)
        wts.append(1.0)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w = wts[-2] + wts[-1]
            vals[-2:] = [(vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w]
            wts[-2:] = [w]
    fitted = np.repeat(vals, np.asarray(wts, dtype=np.int64))
    return xs, np.clip(fitted, 1e-4, 1 - 1e-4)


def _rank_by(query: ConceptQuery, concepts: list[str], presence: np.ndarray, k: int) -> np.ndarray:
    col = {c: j for j, c in enumerate(concepts)}
    cols = [col[t.concept] for t in query.terms]
    p = np.clip(presence[:, cols].astype(np.float64), 1e-12, 1 - 1e-12)
    score = query.joint_log_probability(np.log(p), np.log1p(-p))
    return np.argsort(-score, kind="stable")[:k]


def world_part(quick: bool) -> dict[str, Any]:
    from ceir_sdk.worlds import World

    n_train, n_test = (2000, 1000) if quick else (5000, 2000)
    w = World("world10", image_size=32, seed=0)
    concepts_all = w.oracle.all_concepts()

    def take(split: str, n: int) -> tuple[np.ndarray, list[frozenset[str]], list[str]]:
        ims: list[np.ndarray] = []
        truth: list[frozenset[str]] = []
        labels: list[str] = []
        for b in w.batches(n, split=split, batch_size=500):
            ims.append(b.images)
            truth.extend(b.concepts)
            labels.extend(w.class_names[i] for i in b.labels)
        return np.concatenate(ims), truth, labels

    train_x, train_truth, _ = take("train", n_train)
    test_x, test_truth, test_labels = take("test", n_test)
    info: dict[str, Any] = {"world": "world10", "n_train": n_train, "n_indexed": n_test, **_world_provenance()}
    t0 = time.perf_counter()
    train_acts = None
    try:
        from ceir_sdk.model import CEIRModel
        from ceir_sdk.model.world_concepts import WORLD_CONCEPT_TEMPLATES

        model = CEIRModel("open-clip:ceir-world", latent_options={"max_epochs": 30 if quick else 100},
                          concept_template=list(WORLD_CONCEPT_TEMPLATES))
        train_f = model.backbone.encode_images(train_x, progress=False)
        model.fit_features(train_f, concepts_all, progress=False)
        acts, lat = model.encode(test_x, output="both", progress=False)
        train_acts = model.encode_features(train_f, output="concepts")
        concepts = list(model.concepts)
        info["activations_source"] = ("fitted CEIRModel (open-clip:ceir-world backbone, VAE latent), concepts = "
                                      "world oracle concept list, fit on the train split only; concept template "
                                      f"{list(WORLD_CONCEPT_TEMPLATES)!r}")
    except Exception as exc:  # fall back, and say so in the JSON
        from ceir_sdk import get_backbone

        bb = get_backbone("open-clip:ceir-world")
        f = bb.encode_images(test_x, progress=False)
        t = bb.encode_texts(concepts_all)
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        p = f @ t.T
        acts = ((p - p.mean(0)) / (p.std(0) + 1e-6)).astype(np.float32)
        lat, concepts = acts.copy(), concepts_all
        info["activations_source"] = (f"CEIRModel unavailable ({type(exc).__name__}: {exc}); z-scored CLIP "
                                      "image-text cosine (ceir-world backbone) used directly")
    info["fit_and_encode_seconds"] = round(time.perf_counter() - t0, 1)
    info["n_concepts"] = len(concepts)
    meta = [{"label": lab, "true_concepts": sorted(t)} for lab, t in zip(test_labels, test_truth)]
    t0 = time.perf_counter()
    idx = ConceptIndex.build(lat, acts, concepts, metadata=meta, progress=False)
    info["build_and_calibrate_seconds"] = round(time.perf_counter() - t0, 2)
    acts = np.asarray(acts, np.float32)
    truth_of = {int(i): t for i, t in zip(idx.ids, test_truth)}
    train_y = np.array([[c in t for c in concepts] for t in train_truth]) if train_acts is not None else None

    # presence estimates for the rankings that are not the index's own
    pct = ((np.argsort(np.argsort(acts, axis=0, kind="stable"), axis=0) + 0.5) / len(acts)).astype(np.float64)
    external = None
    ceiling = None
    if train_acts is not None and train_y is not None:
        external = PresenceCalibration.fit(train_acts, concepts, source="external")
        ceiling = np.zeros(acts.shape, np.float64)
        for j in range(len(concepts)):  # scoring-side only: train labels, never in the index
            xs, fit = _isotonic(np.asarray(train_acts[:, j], np.float64), train_y[:, j])
            ceiling[:, j] = fit[np.clip(np.searchsorted(xs, acts[:, j], side="right") - 1, 0, len(xs) - 1)]

    def index_ranking(**kw: Any) -> Any:
        return lambda q: [h.id for h in idx.search_concepts(q, 10, **kw)]

    rankers: dict[str, Any] = {
        "calibrated": index_ranking(),
        "calibrated_z_filter": index_ranking(presence="threshold"),
        "calibrated_unfiltered": index_ranking(strict=False),
        "margin": index_ranking(ranking="margin", presence="threshold"),
        "percentile": lambda q: _rank_by(q, concepts, pct, 10).tolist(),
    }
    if external is not None and ceiling is not None:
        ext_p = external.presence(acts).astype(np.float64)
        rankers["calibrated_on_train_activations"] = lambda q: _rank_by(q, concepts, ext_p, 10).tolist()
        rankers["ceiling_supervised_isotonic"] = lambda q: _rank_by(q, concepts, ceiling, 10).tolist()
    descriptions = {
        "calibrated": "index default: matches by calibrated presence (P(present) >= 0.5 for +, < 0.5 for -), "
                      "ranked by joint log-probability under the label-free 3-component mixture fitted on the "
                      "indexed activations",
        "calibrated_z_filter": "previous default (aa295f8): same ranking, matches by z threshold (z > 0 for +, "
                               "< 0 for -); presence='threshold'",
        "calibrated_unfiltered": "same probabilities, every item ranked (strict=False)",
        "margin": "earlier scoring: z-threshold matches, fuzzy AND, weakest margin over +/- terms (z above / "
                  "below 0); presence='threshold', ranking='margin'",
        "percentile": "baseline: per-concept percentile (rank) in the index as P(present), joint log-probability",
        "calibrated_on_train_activations": "mixture fitted on the training split's activations (no labels)",
        "ceiling_supervised_isotonic": "NOT label-free, scoring-side analysis: per-concept isotonic P(present | z) "
                                       "fitted with the training split's true labels; the best a per-concept "
                                       "calibration of these activations could reach",
    }

    # what each presence rule calls present, item by item (index order = acts order)
    present_by = {"z_filter": acts > idx.presence_threshold,
                  "calibrated_presence_filter": idx.presence_of(idx.ids) >= PRESENT_PROBABILITY}
    absent_by = {"z_filter": acts < idx.presence_threshold,
                 "calibrated_presence_filter": ~present_by["calibrated_presence_filter"]}
    col = {c: j for j, c in enumerate(concepts)}

    def n_matched(q: ConceptQuery, rule: str) -> int:
        ok = np.ones(len(acts), dtype=bool)
        for t in q.terms:
            if t.occur == "must":
                ok &= present_by[rule][:, col[t.concept]]
            elif t.occur == "must_not":
                ok &= absent_by[rule][:, col[t.concept]]
        return int(ok.sum())

    def run(exprs: list[str]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        per: list[dict[str, Any]] = []
        for text in exprs:
            q = parse_expression(text, concepts)
            n_true = sum(q.satisfied_by(t) for t in test_truth)
            row: dict[str, Any] = {"expression": text, "true_matches_in_index": n_true,
                                   "base_rate": round(n_true / len(test_truth), 3),
                                   "matched_by_z_filter": n_matched(q, "z_filter"),
                                   "matched_by_calibrated_presence": n_matched(q, "calibrated_presence_filter")}
            for name, rank in rankers.items():
                got = rank(q)
                row[name] = sum(q.satisfied_by(truth_of[int(i)]) for i in got) / 10  # short lists count as misses
                if len(got) < 10:
                    row.setdefault("returned_under_10", {})[name] = len(got)
            per.append(row)
        means = {name: round(float(np.mean([r[name] for r in per])), 4) if per else float("nan") for name in rankers}
        return means, per

    exprs = expressions_for(concepts, test_truth, np.random.default_rng(0), 24)
    means, per = run(exprs)
    prec = means["calibrated"]
    info.update({
        "n_expressions": len(per), "concept_query_precision_at_10": prec,
        "mean_base_rate": round(float(np.mean([p["base_rate"] for p in per])), 4) if per else None,
        "presence_rule": idx.presence_rule, "present_probability": PRESENT_PROBABILITY,
        "presence_threshold_z": idx.presence_threshold, "bar": ">= 0.9", "passed": prec >= 0.9,
        "expressions_with_under_10_matches": {
            "z_filter": sum(r["matched_by_z_filter"] < 10 for r in per),
            "calibrated_presence_filter": sum(r["matched_by_calibrated_presence"] < 10 for r in per)},
        "scoring": descriptions["calibrated"],
        "precision_at_10_by_ranking": means, "rankings": descriptions,
        "calibration": {k: v for k, v in (idx.info()["calibration"] or {}).items() if k != "present_share"},
    })
    if train_acts is not None:
        info["text_queries"] = _text_query_precision(idx, model, sorted(set(test_labels)))
        # Which concepts does the model detect at all? AUC of each activation against the
        # oracle's truth, on the TRAINING split (the indexed test split is not used for this).
        auc = {c: _auc(train_acts[:, j], np.array([c in t for t in train_truth])) for j, c in enumerate(concepts)}
        good = [c for c in concepts if auc[c] >= 0.9]
        means_d, per_d = run(expressions_for(good, test_truth, np.random.default_rng(1), 24)) if good else ({}, [])
        # a larger draw of each set (same generator, other seeds), for figures less tied to 24 expressions
        big_all, big_per = run(expressions_for(concepts, test_truth, np.random.default_rng(100), 200))
        big_det, big_det_per = run(expressions_for(good, test_truth, np.random.default_rng(101), 200)) if good \
            else ({}, [])
        forms = ["+a", "+a +b", "+a -b", "+a +b -c"]
        by_form = {name: {forms[f]: round(float(np.mean([r[name] for r in big_per[f::4]])), 4) for f in range(4)}
                   for name in rankers}
        cal = idx.calibration
        keys = {"z_filter": "calibrated_z_filter", "calibrated_presence_filter": "calibrated",
                "unfiltered": "calibrated_unfiltered"}

        def compare(m: dict[str, float], rows: list[dict[str, Any]]) -> dict[str, Any]:
            """precision@10 of each filter, and (diagnostic) how many lists came back short
            and the precision of the hits actually returned"""
            out: dict[str, Any] = {k: m.get(v) for k, v in keys.items()}
            for k, v in keys.items():
                returned = [r.get("returned_under_10", {}).get(v, 10) for r in rows]
                correct = sum(r[v] * 10 for r in rows)
                out[f"{k}_short_lists"] = sum(n < 10 for n in returned)
                out[f"{k}_precision_of_returned"] = round(correct / max(sum(returned), 1), 4)
            return out

        info["filter_comparison"] = {
            "note": "same expressions, same joint log-probability ranking; only what counts as a match differs. "
                    "precision@10 counts a short list's missing places as misses; *_precision_of_returned is "
                    "the share of returned hits that are right (diagnostic only)",
            **{name: compare(m, rows) for name, m, rows in (
                ("24_expressions", means, per), ("24_expressions_detectable", means_d, per_d),
                ("200_expressions", big_all, big_per), ("200_expressions_detectable", big_det, big_det_per))}}
        info.update({
            "detectable_concepts": len(good), "detectable_rule": "train-split AUC >= 0.9",
            "concept_query_precision_at_10_detectable": means_d.get("calibrated", 0.0),
            "precision_at_10_by_ranking_detectable": means_d,
            "larger_draws": {"n_expressions": 200, "all_concepts": big_all, "detectable_concepts": big_det,
                             "all_concepts_by_form": by_form},
            "concept_auc_train": {c: round(v, 3) for c, v in sorted(auc.items(), key=lambda kv: -kv[1])},
            "present_share_by_mixture_vs_true_base_rate": {
                c: [round(float(cal.weights[j, -1]), 3) if cal is not None else None,
                    round(float(np.mean([c in t for t in test_truth])), 3)] for j, c in enumerate(concepts)},
            "per_expression_detectable": per_d,
        })
    info["presence_rules_vs_truth"] = _presence_vs_truth(concepts, test_truth, present_by, idx)
    info["per_expression"] = per
    return info


def _presence_vs_truth(concepts: list[str], truth: list[frozenset[str]], present_by: dict[str, np.ndarray],
                       idx: ConceptIndex) -> dict[str, Any]:
    """Scoring only (the index never sees labels): how often each rule's "present" is right,
    per concept on the indexed items, averaged over concepts."""
    y = np.array([[c in t for c in concepts] for t in truth])
    out: dict[str, Any] = {"true_base_rate_mean": round(float(y.mean()), 4)}
    for rule, pres in present_by.items():
        tp = (pres & y).sum(0)
        f1 = 2 * tp / np.maximum(pres.sum(0) + y.sum(0), 1)
        out[rule] = {"share_called_present_mean": round(float(pres.mean()), 4),
                     "accuracy_mean": round(float((pres == y).mean()), 4),
                     "f1_mean": round(float(f1.mean()), 4)}
    if idx.calibration is not None:
        cut = idx.calibration.present_from_z()
        out["calibrated_present_from_z"] = {
            "median": round(float(np.median(cut[np.isfinite(cut)])), 3) if np.isfinite(cut).any() else None,
            "by_concept": {c: (round(float(v), 3) if np.isfinite(v) else None) for c, v in zip(concepts, cut)}}
    return out


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _text_query_precision(idx: ConceptIndex, model: Any, class_names: list[str]) -> dict[str, Any]:
    """precision@10 of class-name texts ("a photo of a zebra.") through search_text, against the
    same texts z-scored with image statistics only (the behaviour before text_scale), in one run."""
    texts = [f"a photo of a {name}." for name in class_names]

    def precision(hit_lists: list[Any]) -> float:
        return round(float(np.mean([np.mean([h.fields.get("label") == name for h in hits]) if hits else 0.0
                                    for name, hits in zip(class_names, hit_lists)])), 4)

    now = precision(idx.search_text(texts, 10, encoder=model))
    image_scale = model.encode_features(model.backbone.encode_texts(texts), output="both")
    before = precision(idx.search(image_scale[1], 10))
    return {"queries": texts, "precision_at_10": now, "precision_at_10_image_scale_only": before,
            "chance": round(1 / len(class_names), 4),
            "note": "hits count when their class is the query's; text z-scores are put on the images' scale "
                    "with text statistics (ceir_sdk/concepts/text_scale.py); image_scale_only is the former way"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100k vectors and a smaller world")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--part", choices=("all", "scale", "world"), default="all",
                    help="run one part only and merge it into the existing --out file (default: all)")
    ap.add_argument("--skip-world", action="store_true", help="same as --part scale")
    ap.add_argument("--skip-scale", action="store_true", help="same as --part world")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/index.json (--quick: results/quick/)")
    args = ap.parse_args()
    part = "scale" if args.skip_world else "world" if args.skip_scale else args.part
    faiss.omp_set_num_threads(min(os.cpu_count() or 1, 16))
    out = result_path("index", args.quick, args.out)
    previous: dict[str, Any] = {}
    if part != "all" and out.is_file():
        previous = json.loads(out.read_text(encoding="utf-8"))
    result: dict[str, Any] = {
        "benchmark": "index", "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "faiss": faiss.__version__,
                    "faiss_gpus": faiss.get_num_gpus(), "note": "shared with other jobs; timings are noisy"},
    }
    head = _git("rev-parse", "--short", "HEAD")
    if part in ("all", "scale"):
        n = args.n or (100_000 if args.quick else 1_000_000)
        result["scale"] = scale_part(n, 1000, args.quick)
        result["scale"]["measured_at"] = f"working tree at commit {head}"
        print(json.dumps(result["scale"], indent=2), flush=True)
    elif "scale" in previous:
        result["scale"] = previous["scale"]
        if "measured_at" not in result["scale"]:
            last = _git("log", "-1", "--format=%h", "--", str(out.relative_to(HERE.parent))) if out.is_relative_to(
                HERE.parent) else ""
            result["scale"]["measured_at"] = f"kept from an earlier run, recorded in commit {last or 'unknown'}"
        result["scale"]["note"] = "not rerun by the last `--part world` run"
    if part in ("all", "world"):
        result["world"] = world_part(args.quick)
        skip = ("per_expression", "per_expression_detectable", "concept_auc_train",
                "present_share_by_mixture_vs_true_base_rate", "presence_rules_vs_truth")
        print(json.dumps({k: v for k, v in result["world"].items() if k not in skip}, indent=2), flush=True)
    elif "world" in previous:
        result["world"] = previous["world"]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
