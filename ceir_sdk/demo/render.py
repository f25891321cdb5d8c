"""Turn demo/report results into the self-contained HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.demo import plots
from ceir_sdk.report import Figure, ImageGrid, Report, Table

METRIC_LABELS = {
    "ceir": "CEIR latent (k-means)",
    "raw_kmeans": "raw backbone features (k-means)",
    "concept_kmeans": "concept activations (k-means)",
}


def _plain(results: dict[str, Any]) -> dict[str, Any]:
    """The results exactly as results.json will hold them (numpy and sets made plain)."""
    from ceir_sdk.demo.pipeline import _jsonable

    return dict(json.loads(json.dumps(results, default=_jsonable)))


def _hit_grid(hits: list[dict[str, Any]], images: np.ndarray | None, title: str) -> ImageGrid | None:
    if images is None or not hits:
        return None
    return ImageGrid(
        [images[h["id"]] for h in hits if 0 <= h["id"] < len(images)],
        [f"{h.get('class') or ''} ({h['score']:.2f})" for h in hits],
        title,
    )


def nuisance_section(report: Report, images: np.ndarray | None, nuisances: list[dict[str, str]] | None) -> None:
    """A few evaluation images per nuisance value: what the backbone sees and no concept names."""
    if images is None or not nuisances:
        return
    from ceir_sdk.worlds.nuisance import NUISANCE_FAMILIES, NUISANCE_VALUES

    section = report.section("How the pictures were made (nuisances)")
    section.add_text(
        "Besides its concepts, every image of the drawn world (version 2) has a rendering style, a light, camera "
        "faults, overlays and weather, drawn independently of its class, as web pictures do. The world CLIP was "
        "trained on captions that name them, so its features encode them, as a web-trained CLIP encodes style. "
        "No concept source knows about them: they are in no concept list, so the concept bottleneck has no "
        "concept for them, and what the latent keeps of them is only what leaks through the concepts.")
    for family in NUISANCE_FAMILIES:
        shown: list[np.ndarray] = []
        labels: list[str] = []
        for value in NUISANCE_VALUES[family][1:]:
            rows = [i for i, n in enumerate(nuisances) if n.get(family) == value][:3]
            shown += [images[i] for i in rows]
            labels += [value] * len(rows)
        if shown:
            section.add(ImageGrid(shown, labels, f"{family}: three evaluation images per value"))


def build_report(results: dict[str, Any], assets: dict[str, Any]) -> Report:
    data = _plain(results)
    evaluation = data["evaluation"]
    images = assets.get("test_images")
    report = Report(
        "CEIR report: " + str(data.get("domain", "")),
        (f"model fitted on {data['n_train']} training images, " if data.get("n_train") else "")
        + f"{data.get('n_test', '?')} evaluation images, backbone {data['backbone'].get('name', '?')}",
        data=data,
    )

    summary = report.section("Clustering against the baselines")
    rows = []
    for space, m in evaluation["metrics"].items():
        rows.append([METRIC_LABELS.get(space, space), m["nmi_mean"], m["nmi_std"], m["acc_mean"], m["acc_std"],
                     m["ari_mean"], m["ari_std"], int(m["seeds"])])
    summary.add(Table(["representation", "NMI", "± std", "ACC", "± std", "ARI", "± std", "seeds"], rows,
                      "k-means with k = number of classes on the evaluation images, scored against their "
                      "labels (the model itself was fitted on training images only)"))
    summary.add(Figure(plots.metric_bars(evaluation["metrics"]), "NMI, ACC and ARI, mean ± std over seeds"))
    if data.get("skipped"):
        skipped = data["skipped"]
        summary.add_text(f"{len(skipped)} evaluation images could not be read and were left out: "
                         + "; ".join(f"{s['image']} ({s['problem']})" for s in skipped[:10])
                         + (" ..." if len(skipped) > 10 else ""), note=True)
    label_info = data.get("label_information", {})
    summary.add_text(
        "Label information that entered: "
        + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in label_info.items() if k != "note")
        + (f". {label_info['note']}." if label_info.get("note") else ""),
        note=True,
    )
    if "explain_precision_at_5" in evaluation:
        summary.add_text(
            f"Explanation precision@5 against the world's true concepts: {evaluation['explain_precision_at_5']:.3f}"
        )

    nuisance_section(report, images, assets.get("test_nuisances"))

    concepts = data.get("concepts")
    if concepts:
        section = report.section("Concepts")
        section.add_text(
            f"Source {concepts['source']}: {concepts['raw']} raw concepts, {concepts['after_processing']} after "
            f"processing, {concepts['kept_by_model']} kept by the bottleneck (visible to the backbone and learnable). "
            f"Near-duplicate and class-name similarity: {concepts.get('similarity', 'default')}."
        )
        step_rows = []
        for step in concepts.get("filter_steps", []):
            if isinstance(step, dict):
                step_rows.append([step.get("name", "?"), step.get("after", ""),
                                  len(step.get("removed", []) or [])])
        if step_rows:
            section.add(Table(["step", "left", "removed"], step_rows))

    clusters = evaluation["clusters"]
    section = report.section("Clusters, named by their concepts")
    section.add(Table(
        ["cluster", "size", "named by", "majority class", "purity"],
        [[c["cluster"], c["size"], c["name"], c.get("majority_class") or "-", c["purity"]] for c in clusters],
    ))
    labels = assets.get("cluster_labels")
    concepts_z = assets.get("concepts_z")
    names = assets.get("concept_names")
    if labels is not None and concepts_z is not None and names is not None:
        section.add(Figure(plots.cluster_profiles(clusters, np.asarray(concepts_z), np.asarray(labels), names),
                           "Each cluster's dominant concepts (mean z-scored activation)"))
        if images is not None:
            for c in clusters:
                members = np.flatnonzero(np.asarray(labels) == c["cluster"])[:10]
                section.add(ImageGrid([images[i] for i in members], [], f"cluster {c['cluster']}: {c['name']}"))

    section = report.section("Explanations of single images")
    section.add_text("Signed concept contributions (integrated gradients on the latent; they sum to the "
                     "latent's difference from the mean image's). 'NOT x' marks a concept that is absent.")
    for item in evaluation["explanations"]:
        if images is not None:
            section.add(ImageGrid([images[item["index"]]], [item["class"]], f"image {item['index']}"))
        section.add(Figure(plots.contribution_bars(item["top"], f"image {item['index']} ({item['class']})"),
                           "true concepts: " + ", ".join(item.get("true_concepts", [])) if item.get("true_concepts")
                           else ""))

    onnx = data.get("onnx")
    if onnx:
        section = report.section("Deployment: ONNX bundle and torch-free runtime")
        section.add(Table(["bundle", "providers", "max |Δ| latent vs torch", "max |Δ| concepts vs torch"],
                          [[onnx["bundle"], ", ".join(onnx["providers"]), onnx["max_abs_diff_latent"],
                            onnx["max_abs_diff_concepts"]]]))

    queries = data.get("queries")
    if queries:
        section = report.section("Search through the runtime and the FAISS ConceptIndex")
        text = queries["text"]
        # A query the concept set cannot build is {"skipped": why} (see demo/queries.py).
        for skipped in (q["skipped"] for q in (text, queries["concept_expression"], queries["edited_example"])
                        if "skipped" in q):
            section.add_text(f"Not run: {skipped}.")
        if "skipped" not in text:
            section.add_text(f"Text query '{text['query']}': share of top-{queries['k']} results showing both "
                             f"concepts {text['share_with_both_concepts']:.2f}.")
            grid = _hit_grid(text["hits"], images, "text query results")
            if grid:
                section.add(grid)
        expr = queries["concept_expression"]
        if "skipped" not in expr:
            section.add_text(f"Concept expression '{expr['query']}': precision@{queries['k']} against the true "
                             f"concepts {expr['precision_at_k']:.2f}.")
            grid = _hit_grid(expr["hits"], images, "concept expression results")
            if grid:
                section.add(grid)
        edit = queries["edited_example"]
        if "skipped" not in edit:
            section.add_text(
                f"Edited example: item {edit['item']} ({edit['item_class']}), remove {edit['edit']['remove']}, add "
                f"{edit['edit']['add']}. Share of results showing the removed concept "
                f"{edit['before']['share_removed']:.2f} -> {edit['after']['share_removed']:.2f}; showing the added one "
                f"{edit['before']['share_added']:.2f} -> {edit['after']['share_added']:.2f}."
            )
            if images is not None:
                section.add(ImageGrid([images[edit["item"]]], [edit["item_class"]], "the example"))
            for key, title in (("before", "similar items, unedited"), ("after", "similar items after the edit")):
                grid = _hit_grid(edit[key]["hits"], images, title)
                if grid:
                    section.add(grid)

    timings = data.get("timings_s")
    if timings:
        section = report.section("Timings")
        section.add(Table(["step", "seconds"], [[k, v] for k, v in timings.items()]))
    return report


def write_report(results: dict[str, Any], assets: dict[str, Any], path: str | Path) -> Path:
    return build_report(results, assets).write(path)
