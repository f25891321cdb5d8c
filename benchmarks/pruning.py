"""How many concepts each pruning stage of the concept bottleneck removes (issue 25).

Stage 1 (visibility): a concept whose mean top-5 activation P over the training images is at or
below a cutoff is dropped before training: the data-relative "auto" rule (median - 3 robust SD)
against the reference's fixed 0.25. Stage 2 (learnability): after training, a concept whose
validation cos^3 similarity is at or below 0.45 is dropped.

Configurations, on drawn world images (training split) with the bundled world CLIP:
- ``same-clip``: targets from the backbone's own text tower, text start (the zero-shot shortcut:
  stage 2 cannot drop anything) and random start (the reference's start, same targets);
- ``pixels->clip``: a backbone without a text tower (8x8 average-pooled RGB, 192 numbers) taught
  the world CLIP's concept scores, the way Label-free CBM teaches a ResNet: stage 2 now acts.

Untimed; a few minutes on two cores. ``--quick``: 600 images, world10 only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import result_path, write_result


def pooled_pixels(images: np.ndarray) -> np.ndarray:
    """8x8 average-pooled RGB in [0, 1], flattened: a backbone with no idea what a concept is."""
    arr = np.asarray(images, dtype=np.float32) / 255.0
    n, h, w, c = arr.shape
    return arr.reshape(n, 8, h // 8, 8, w // 8, c).mean(axis=(2, 4)).reshape(n, -1)


def stage_counts(x: np.ndarray, concept_features: np.ndarray | None, text: np.ndarray, names: list[str],
                 *, visibility: float | str, init: str, seed: int = 0) -> dict[str, Any]:
    from ceir_sdk.model import BottleneckConfig, ConceptBottleneck

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = max(2, len(x) // 10)
    tr, va = np.sort(order[n_val:]), np.sort(order[:n_val])
    from ceir_sdk.errors import BadInputError

    b = ConceptBottleneck(BottleneckConfig(visibility_cutoff=visibility, init=init))
    targets = {} if concept_features is None else {"targets": concept_features[tr],
                                                    "val_targets": concept_features[va]}
    try:
        b.fit(x[tr], x[va], text, names, seed=seed, progress=False, **targets)
    except BadInputError as exc:  # e.g. a cutoff above every concept's top-5 mean: all dropped
        return {"given": len(names), "kept": 0, "error": str(exc)}
    r = b.report
    return {"visibility_cutoff": round(r.visibility_cutoff, 4), "given": r.n_given,
            "dropped_not_visible": r.n_given - r.n_visible, "dropped_not_learnable": r.n_visible - r.n_kept,
            "kept": r.n_kept, "init": r.init, "steps_run": r.steps_run,
            "val_similarity": [round(r.initial_val_similarity, 4), round(r.best_val_similarity, 4)],
            "projection_is_zero_shot": r.projection_is_zero_shot,
            "examples_not_visible": sorted(r.dropped_not_visible, key=r.dropped_not_visible.get)[:5],
            "examples_not_learnable": sorted(r.dropped_not_learnable, key=r.dropped_not_learnable.get)[:5]}


def run(domain: str, n: int) -> dict[str, Any]:
    from ceir_sdk.model.world_concepts import oracle_concepts
    from ceir_sdk.plugins import get_backbone
    from ceir_sdk.worlds import World

    world = World(domain, image_size=32)
    images = np.concatenate([b.images for b in world.batches(n, split="train", batch_size=512)])
    clip = get_backbone("open-clip:ceir-world", device="cpu")
    names = oracle_concepts(world)
    clip_features = np.asarray(clip.encode_images(images, progress=False), np.float32)
    text = np.asarray(clip.encode_texts(names), np.float32)
    pixels = pooled_pixels(images)
    p = (clip_features / np.linalg.norm(clip_features, axis=1, keepdims=True)) @ (
        text / np.linalg.norm(text, axis=1, keepdims=True)).T
    from ceir_sdk.model.bottleneck import top5_mean

    top5 = top5_mean(p)
    out: dict[str, Any] = {"n_images": len(images), "n_concepts": len(names),
                           "top5_mean_quantiles": {q: round(float(np.quantile(top5, q)), 4)
                                                   for q in (0.0, 0.05, 0.25, 0.5, 0.75, 1.0)}}
    for visibility in ("auto", "reference"):
        out[f"visibility={visibility}"] = {
            "same-clip, text start": stage_counts(clip_features, None, text, names, visibility=visibility,
                                                  init="text"),
            "same-clip, random start": stage_counts(clip_features, None, text, names, visibility=visibility,
                                                    init="random"),
            "pixels->clip, random start": stage_counts(pixels, clip_features, text, names, visibility=visibility,
                                                       init="random"),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=None, help="training images per domain (default 3000; quick 600)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--domain", action="append", default=None, help="world domain(s); default both")
    args = parser.parse_args()
    n = args.n or (600 if args.quick else 3000)
    domains = args.domain or (["world10"] if args.quick else ["world10", "world100_20"])
    result = {"benchmark": "pruning", "backbone_concept_model": "open-clip:ceir-world", "concepts": "world oracle",
              "domains": {d: run(d, n) for d in domains}}
    path = result_path("pruning", args.quick, args.out)
    write_result(path, result)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
