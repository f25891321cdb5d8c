"""``ceir report``: evaluate a fitted model on a labelled dataset and render the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError

THUMBNAIL = 64


def _thumbnail(path: str | None) -> np.ndarray:
    from PIL import Image

    blank = np.full((THUMBNAIL, THUMBNAIL, 3), 230, np.uint8)
    if path is None:
        return blank
    try:
        with Image.open(path) as opened:
            img = opened.convert("RGB")
            img.thumbnail((THUMBNAIL, THUMBNAIL))
            canvas = Image.new("RGB", (THUMBNAIL, THUMBNAIL), (255, 255, 255))
            canvas.paste(img, ((THUMBNAIL - img.width) // 2, (THUMBNAIL - img.height) // 2))
            return np.asarray(canvas)
    except OSError:
        return blank


def run_report(model_dir: Path, dataset: str, out_file: Path, *, count: int = 2000, on_error: str = "skip",
               progress: bool = True) -> dict[str, Any]:
    from ceir_sdk.demo.evaluate import evaluate
    from ceir_sdk.demo.pipeline import _jsonable
    from ceir_sdk.demo.render import write_report
    from ceir_sdk.model import CEIRModel
    from ceir_sdk.worlds import DOMAINS, World
    from ceir_sdk.worlds.descriptions import description_parts, expand_truth

    model = CEIRModel.load(model_dir)
    true_concepts = None
    skipped: list[dict[str, Any]] = []
    if dataset in DOMAINS:
        world = World(dataset, image_size=32, seed=0)
        images: list[np.ndarray] = []
        labels_list: list[np.ndarray] = []
        truths: list[frozenset[str]] = []
        for batch in world.batches(count, split="test", batch_size=512):
            images.append(np.asarray(batch.images))
            labels_list.append(np.asarray(batch.labels))
            truths.extend(frozenset(c) for c in batch.concepts)
        pixels = np.concatenate(images)
        labels = np.concatenate(labels_list).astype(np.int64)
        class_names = list(world.class_names)
        features = model.backbone.encode_images(pixels, progress=progress)
        thumbnails = pixels
        parts = description_parts(world)
        true_concepts = [expand_truth(truth, parts) for truth in truths]
    else:
        folder = Path(dataset)
        if not folder.is_dir():
            raise BadInputError(f"--dataset {dataset!r} is neither a world ({', '.join(DOMAINS)}) nor a folder")
        encoded = model.backbone.encode(folder, progress=progress, on_error=on_error)
        if any(label is None for label in encoded.labels):
            raise BadInputError(f"{folder} needs one subfolder per class so the report can score the clusters")
        class_names = sorted({str(label) for label in encoded.labels})
        lookup = {name: i for i, name in enumerate(class_names)}
        labels = np.array([lookup[str(label)] for label in encoded.labels], dtype=np.int64)
        features = encoded.features
        thumbnails = np.stack([_thumbnail(p) for p in encoded.paths])
        skipped = [{"image": s.id, "path": s.path, "problem": s.problem} for s in encoded.report.skipped]
    if len(features) < len(class_names):
        raise BadInputError(f"{len(features)} images for {len(class_names)} classes: give at least one per class")
    evaluation = evaluate(model, features, labels, class_names, true_concepts=true_concepts, progress=progress)
    results: dict[str, Any] = {
        "domain": dataset,
        "n_test": len(labels),
        "n_train": model.provenance.get("n_train"),
        "skipped": skipped,
        "backbone": model.backbone.spec(),
        "label_information": model.label_information,
        "evaluation": evaluation.as_dict(),
    }
    concepts_z = model.encode_features(features, output="concepts")
    assets = {"test_images": thumbnails, "cluster_labels": evaluation.cluster_labels, "concepts_z": concepts_z,
              "concept_names": model.concepts}
    write_report(results, assets, out_file)
    from ceir_sdk.report.html import atomic_write_text

    atomic_write_text(out_file.with_suffix(".json"), json.dumps(results, indent=2, default=_jsonable))
    return results
