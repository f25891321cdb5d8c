"""Scale-out figures for the Ray plugin; writes benchmarks/results/ray_scale.json.

ray_over_single: images/s through `ceir_ray.embed_collection` on a local Ray cluster (one
  onnxruntime session per actor, one actor per CPU) over images/s of the single-process
  runtime (`ceir_onnx.runtime.Runtime.embed`, all CPUs) on the same PNG files; bar >= 0.75.
  Model: the bundled ceir-world CLIP (32 px ViT) with a CEIR head of the paper's shape
  (200 concepts, VAE encoder 200-256-128); the head's weights are random, which does not
  change the cost. Each side is timed twice, alternately, and the best of each is kept
  (the machine is shared). The Ray figure includes actor start-up, not cluster start-up.
peak_rss_gb: peak resident memory of a fresh process that builds an IVF-PQ index over
  10,000,000 128-d vectors (1,000,000 with --quick) streamed from float16 parquet shards;
  bar <= 4. The shards are generated on disk first and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _results import result_path, write_result

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "ray_scale.json"


def world_bundle(out: Path) -> Path:
    """ONNX bundle: ceir-world image tower + a paper-shaped CEIR head (random weights)."""
    import open_clip
    import torch
    from ceir_onnx.export import ExportParts, export_bundle
    from ceir_open_clip.world_model import WORLD_MODEL_NAME, checkpoint_path, register_with_open_clip

    register_with_open_clip()
    ckpt = checkpoint_path()
    clip = open_clip.create_model(WORLD_MODEL_NAME, pretrained=str(ckpt) if ckpt.exists() else None).eval()
    dim = clip.visual.output_dim
    n_c, hidden, latent = 200, 256, 128
    torch.manual_seed(0)

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.clip.encode_image(pixels)

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bottleneck = torch.nn.Linear(dim, n_c, bias=False)
            self.register_buffer("mean", torch.zeros(n_c))
            self.register_buffer("std", torch.ones(n_c))
            self.encoder = torch.nn.Sequential(torch.nn.Linear(n_c, hidden), torch.nn.BatchNorm1d(hidden),
                                               torch.nn.ReLU(), torch.nn.Linear(hidden, 2 * latent))

        def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = (self.bottleneck(features) - self.mean) / self.std
            return z, self.encoder(z)[:, :latent]

    text = np.random.default_rng(0).standard_normal((n_c, dim)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    parts = ExportParts(
        image_module=Image().eval(), head_module=Head().eval(), concepts=[f"concept {i}" for i in range(n_c)],
        concept_text_embeddings=text,
        preprocess={"image_size": 32, "resize": "shortest", "crop": "center", "interpolation": "bicubic",
                    "mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)},
        tokenizer_info={"kind": "clip-bpe", "context_length": 32, "vocab_file": open_clip.tokenizer.default_bpe()},
        model_info={"backbone": {"name": f"open-clip:{WORLD_MODEL_NAME}"}, "benchmark": "ray_scale"},
    )
    return export_bundle(parts, out / "bundle", progress=False)


def world_pngs(out: Path, n: int) -> Path:
    from PIL import Image

    from ceir_sdk.worlds import World

    folder = out / "images"
    folder.mkdir()
    i = 0
    for batch in World("world10", image_size=32, seed=0).batches(n, split="train", batch_size=1000):
        for img in batch.images:
            Image.fromarray(img).save(folder / f"{i:06d}.png")
            i += 1
    return folder


def throughput(tmp: Path, n: int, repeats: int) -> dict[str, Any]:
    import ray
    from ceir_onnx.runtime import Runtime
    from ceir_ray import embed_collection

    bundle = world_bundle(tmp)
    images = world_pngs(tmp, n)
    files = sorted(images.iterdir())
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    single, through_ray = [], []
    try:
        for r in range(repeats):
            rt = Runtime(bundle, precision="fp32", providers="cpu", batch_size=64)
            t0 = time.perf_counter()
            latent = rt.embed(files)
            single.append(n / (time.perf_counter() - t0))
            assert latent.shape == (n, 128)
            out = tmp / f"shards{r}"
            report = embed_collection(images, out, bundle=bundle, shard_size=2_000, unit_rows=256, progress=False)
            assert report.rows_embedded == n
            through_ray.append(report.images_per_second)
            shutil.rmtree(out)
    finally:
        ray.shutdown()
    return {"images": n, "single_images_per_s": [round(v, 1) for v in single],
            "ray_images_per_s": [round(v, 1) for v in through_ray], "ray_actors": cpus,
            "ray_over_single": round(max(through_ray) / max(single), 3)}


def index_child(shards: str, out: str) -> None:
    """Runs in a fresh process so its peak RSS is the index build's alone."""
    from ceir_ray import build_index

    t0 = time.perf_counter()
    report = build_index(shards, out, progress=False)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    print(json.dumps({"report": report.__dict__, "peak_rss_gb": round(peak_kb / 2**20, 3),
                      "seconds": round(time.perf_counter() - t0, 1)}))


def peak_rss(tmp: Path, n: int) -> dict[str, Any]:
    from ceir_ray.synthetic import write_synthetic_shards

    t0 = time.perf_counter()
    shards = write_synthetic_shards(tmp / "vectors", n, dim=128, shard_size=100_000, dtype="float16")
    gen = time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in shards.root.iterdir())
    child = subprocess.run([sys.executable, __file__, "--index-child", str(shards.root), str(tmp / "index")],
                           capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    index_bytes = sum(p.stat().st_size for p in (tmp / "index").glob("*.faiss"))
    shutil.rmtree(shards.root)
    return {"vectors": n, "dim": 128, "shard_rows": 100_000, "shards_gb_on_disk": round(disk / 1e9, 2),
            "generate_seconds": round(gen, 1), "index_file_gb": round(index_bytes / 1e9, 3), **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 images and 1,000,000 vectors")
    parser.add_argument("--index-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/ray_scale.json (--quick: results/quick/)")
    args = parser.parse_args()
    if args.index_child:
        index_child(*args.index_child)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict[str, Any] = {"benchmark": "ray_scale", "quick": args.quick, "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory(prefix="ray_scale-") as tmp:
        if not args.skip_throughput:
            result["throughput"] = throughput(Path(tmp), 2_000 if args.quick else 6_000, repeats=2)
            result["ray_over_single"] = result["throughput"]["ray_over_single"]
        if not args.skip_index:
            result["indexing"] = peak_rss(Path(tmp), 1_000_000 if args.quick else 10_000_000)
            result["peak_rss_gb"] = result["indexing"]["peak_rss_gb"]
    result["bars"] = {"ray_over_single": ">= 0.75", "peak_rss_gb": "<= 4"}
    result["pass"] = {k: (result[k] >= 0.75 if k == "ray_over_single" else result[k] <= 4)
                      for k in ("ray_over_single", "peak_rss_gb") if k in result}
    write_result(result_path("ray_scale", args.quick, args.out), result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
