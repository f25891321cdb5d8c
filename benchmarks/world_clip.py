#!/usr/bin/env python
"""Figures of the bundled ceir-world CLIP on held-out (test split) images of the drawn world.

    HF_HUB_OFFLINE=1 python benchmarks/world_clip.py [--quick] [--checkpoint PATH]

zero_shot_family_accuracy: per drawn family, argmax over that family's concept prompts on
world10 test images (around: images with exactly one thing around, top-1 must be it);
zero_shot_class_accuracy: world10 class-name prompts; raw_kmeans: k-means (k = 10, own numpy
Lloyd with k-means++ seeding, 3 restarts, so results do not depend on a library version) on
normalised image embeddings of world10 test images, mean and std over 5 seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without an install
sys.path.insert(0, str(ROOT / "plugins/open-clip/src"))

from _results import result_path, write_result  # noqa: E402

from ceir_sdk.metrics import clustering_scores  # noqa: E402
from ceir_sdk.worlds import World  # noqa: E402
from ceir_sdk.worlds.vocabulary import with_article  # noqa: E402

RESULT = ROOT / "benchmarks/results/world_clip.json"

# Prompt templates per family; the embedding of a concept is the mean over its templates.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": ("a photo of {a} object.", "{a} object."),
    "colour": ("a photo of {a} object.", "{a} object."),
    "pattern": ("a photo of {a} object.", "{a} object."),
    "size": ("a photo of {a} object.", "{a} object."),
    "scene": ("something on {c}.", "something in front of {c}.", "an object with {c} in the background."),
    "around": ("an object next to {c}.", "an object near {c}.", "an object with {c}."),
    "superclass": ("a photo of {c}.",),
    "class": ("a photo of {a}.", "{a}."),
}


def load_model(checkpoint: Path | None) -> tuple[Any, Any, tuple[float, ...], tuple[float, ...]]:
    import open_clip
    from ceir_open_clip.world_model import WORLD_MODEL_NAME, checkpoint_path, register_with_open_clip

    register_with_open_clip()
    path = checkpoint if checkpoint is not None else checkpoint_path()
    model, _, _preprocess = open_clip.create_model_and_transforms(WORLD_MODEL_NAME, pretrained=str(path))
    model.eval()
    tokenizer = open_clip.get_tokenizer(WORLD_MODEL_NAME)
    mean = tuple(model.visual.preprocess_cfg["mean"])
    std = tuple(model.visual.preprocess_cfg["std"])
    return model, tokenizer, mean, std


@torch.no_grad()
def text_embeddings(model: Any, tokenizer: Any, family: str, concepts: list[str]) -> torch.Tensor:
    out = []
    for c in concepts:
        prompts = [t.format(c=c, a=with_article(c)) for t in TEMPLATES[family]]
        e = model.encode_text(tokenizer(prompts), normalize=True).mean(0)
        out.append(e / e.norm())
    return torch.stack(out)


@torch.no_grad()
def image_embeddings(
    model: Any, world: World, n: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    feats, labels, fams = [], [], []
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    for b in world.batches(n, "test", batch_size=500):
        x = (torch.from_numpy(b.images).permute(0, 3, 1, 2).float() / 255.0 - m) / s
        feats.append(model.encode_image(x, normalize=True).numpy())
        labels.append(b.labels)
        fams.extend(b.families)
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels), fams


def zero_shot(
    model: Any, tokenizer: Any, world: World, feats: np.ndarray, fams: list[dict[str, Any]]
) -> dict[str, float]:
    acc: dict[str, float] = {}
    families = world.oracle.families()
    for family in ("shape", "colour", "pattern", "size", "scene", "around", "superclass"):
        concepts = families[family]
        pred = (feats @ text_embeddings(model, tokenizer, family, concepts).numpy().T).argmax(1)
        if family == "around":
            keep = [i for i, f in enumerate(fams) if len(f["around"]) == 1]
            hits = [concepts[pred[i]] == fams[i]["around"][0] for i in keep]
        elif family == "superclass":
            hits = [concepts[pred[i]] in fams[i]["superclass"] for i in range(len(fams))]
        else:
            hits = [concepts[pred[i]] == fams[i][family] for i in range(len(fams))]
        acc[family] = round(float(np.mean(hits)), 4)
    return acc


def kmeans(x: np.ndarray, k: int, seed: int, restarts: int = 3, iters: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; the restart with the lowest inertia wins."""
    rng = np.random.default_rng(seed)
    x = x.astype(np.float64)
    sq = (x * x).sum(1)
    best, best_inertia = np.zeros(len(x), dtype=np.int64), np.inf
    for _ in range(restarts):
        centres = [x[rng.integers(len(x))]]
        for _ in range(1, k):
            d = np.min(sq[:, None] - 2 * x @ np.array(centres).T + (np.array(centres) ** 2).sum(1), axis=1)
            d = np.maximum(d, 0)
            centres.append(x[rng.choice(len(x), p=d / d.sum())])
        c = np.array(centres)
        for _ in range(iters):
            dist = sq[:, None] - 2 * x @ c.T + (c * c).sum(1)
            assign = dist.argmin(1)
            new = np.array([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        inertia = float(dist[np.arange(len(x)), assign].sum())
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    return best


def kmeans_scores(feats: np.ndarray, labels: np.ndarray, k: int, seeds: int) -> dict[str, Any]:
    runs = [clustering_scores(labels, kmeans(feats, k, seed)) for seed in range(seeds)]
    out: dict[str, Any] = {m: round(float(np.mean([r[m] for r in runs])), 4) for m in ("nmi", "acc", "ari")}
    out["std"] = {m: round(float(np.std([r[m] for r in runs])), 4) for m in ("nmi", "acc", "ari")}
    out["seeds"] = seeds
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2,000 test images instead of 10,000")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help=f"default: {RESULT.name} (--quick: results/quick/)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)
    n = 2000 if args.quick else 10_000
    t0 = time.time()
    model, tokenizer, mean, std = load_model(args.checkpoint)
    from ceir_open_clip.world_model import checkpoint_path, training_info_path

    ckpt = args.checkpoint if args.checkpoint is not None else checkpoint_path()
    info_path = training_info_path() if args.checkpoint is None else args.checkpoint.parent / "training_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}

    w10 = World("world10", 32, seed=0)
    feats, labels, fams = image_embeddings(model, w10, n, mean, std)
    family_acc = zero_shot(model, tokenizer, w10, feats, fams)
    superclass_acc = family_acc.pop("superclass")
    class_text = text_embeddings(model, tokenizer, "class", w10.class_names).numpy()
    class_acc = float(((feats @ class_text.T).argmax(1) == labels).mean())

    w100 = World("world100_20", 32, seed=0)
    f100, l100, fam100 = image_embeddings(model, w100, n // 2, mean, std)
    family_acc_100 = zero_shot(model, tokenizer, w100, f100, fam100)
    family_acc_100.pop("superclass")

    result = {
        "model": "open-clip:ceir-world",
        "quick": args.quick,
        "test_images": n,
        "zero_shot_family_accuracy": family_acc,
        "zero_shot_class_accuracy": round(class_acc, 4),
        "zero_shot_superclass_accuracy_world10": superclass_acc,
        "zero_shot_family_accuracy_world100_20": family_acc_100,
        "raw_kmeans": kmeans_scores(feats, labels, w10.num_classes, seeds=5),
        "raw_kmeans_world100_20": kmeans_scores(f100, l100, 20, seeds=5),
        "train_seconds": info.get("train_seconds"),
        "train_steps": info.get("steps"),
        "train_device": info.get("device"),
        "checkpoint_mb": round(Path(ckpt).stat().st_size / 2**20, 2),
        "bench_seconds": round(time.time() - t0, 1),
        "notes": (
            "world10/world100_20 test split, 32x32; around scored on images with exactly one thing "
            "around; k-means: numpy Lloyd + k-means++, k = number of labels, 3 restarts, 5 seeds, "
            "on L2-normalised image embeddings; superclass is class-level (not drawn)"
        ),
    }
    args.out = result_path("world_clip", args.quick, args.out)
    write_result(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
