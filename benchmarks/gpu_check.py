"""GPU check for the ONNX path: CUDA EP, fp16, faiss GPU and torch CUDA, timed.

Standalone (python benchmarks/gpu_check.py [--out PATH]); runs in well under 5 minutes and
writes benchmarks/results/gpu_check.json. Without a GPU every part records why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "exporters/onnx/src"):  # also runs from a bare checkout
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from _results import write_result  # noqa: E402


def _timed(fn: Any, n_items: int, repeats: int = 3) -> float:
    fn()  # warm-up (CUDA context, cuDNN/TensorRT autotuning, arena growth)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_items / best


def _section(results: dict[str, Any], name: str, fn: Any) -> None:
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:
        results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                         "trace": traceback.format_exc()[-1500:]}
    results[name]["seconds"] = round(time.perf_counter() - t0, 2)
    print(name, json.dumps(results[name])[:400], flush=True)


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {"status": "ok", "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError as exc:
        info["torch"] = f"not importable: {exc}"
    import onnxruntime as ort

    info["onnxruntime"] = ort.__version__
    info["ort_available_providers"] = ort.get_available_providers()
    return info


def torch_cuda(parts: Any, batch: int) -> dict[str, Any]:
    import torch
    from ceir_onnx.export import _image_graph_module

    if not torch.cuda.is_available():
        return {"status": "skipped", "reason": "torch.cuda.is_available() is False (no GPU or CPU-only torch)"}
    module = _image_graph_module(parts).cuda()
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    out: dict[str, Any] = {"status": "ok", "batch": batch}

    def run(m: Any, inp: Any) -> None:
        with torch.no_grad():
            m(inp)
        torch.cuda.synchronize()

    out["fp32_images_per_s"] = round(_timed(lambda: run(module, x), batch), 1)
    with torch.no_grad():
        ref = module(x)[1].float()
    half = _image_graph_module(parts).cuda().half()
    out["fp16_images_per_s"] = round(_timed(lambda: run(half, x.half()), batch), 1)
    with torch.no_grad():
        got = half(x.half())[1].float()
    out["fp16_latent_min_cosine"] = float(torch.nn.functional.cosine_similarity(ref, got).min())
    return out


def ort_cuda(bundle: Path, batch: int) -> dict[str, Any]:
    import onnxruntime as ort
    from ceir_onnx.runtime import ProviderWarning, Runtime

    out: dict[str, Any] = {"available_providers": ort.get_available_providers()}
    pixels = np.random.default_rng(0).normal(size=(batch, 3, 224, 224)).astype(np.float32)
    cpu = Runtime(bundle, providers="cpu", precision="fp32", batch_size=batch)
    ref = cpu.run_pixels(pixels[:8]).latent
    out["cpu_fp32_images_per_s"] = round(_timed(lambda: cpu.run_pixels(pixels), batch, repeats=2), 1)
    for precision in ("fp32", "fp16"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rt = Runtime(bundle, providers="cuda", precision=precision, batch_size=batch)
        entry: dict[str, Any] = {
            "active_providers": rt.providers,
            "provider_warning": [str(w.message) for w in caught if issubclass(w.category, ProviderWarning)],
        }
        if "CUDAExecutionProvider" not in rt.providers:
            entry["status"] = "skipped"
            entry["reason"] = "CUDAExecutionProvider not active (the loud warning above was raised as designed)"
        else:
            got = rt.run_pixels(pixels[:8]).latent
            cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
            entry.update(status="ok", images_per_s=round(_timed(lambda r=rt: r.run_pixels(pixels), batch), 1),
                         latent_min_cosine_to_cpu_fp32=float(cos.min()))
        out[precision] = entry
    out["status"] = "ok" if out["fp32"]["status"] == "ok" else "skipped"
    return out


def faiss_gpu() -> dict[str, Any]:
    try:
        import faiss
    except ImportError as exc:
        return {"status": "skipped", "reason": f"faiss not importable: {exc}"}
    n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if n_gpus == 0:
        return {"status": "skipped", "reason": f"faiss {faiss.__version__} sees no GPU (faiss-cpu build?)"}
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(200_000, 128)).astype(np.float32)
    xq = rng.normal(size=(10_000, 128)).astype(np.float32)
    res = faiss.StandardGpuResources()
    index = faiss.index_cpu_to_gpu(res, 0, faiss.IndexFlatIP(128))
    index.add(xb)
    qps = _timed(lambda: index.search(xq, 10), len(xq))
    return {"status": "ok", "n_gpus": n_gpus, "flat_ip_200k_x128_queries_per_s": round(qps, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu_check.json")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    results: dict[str, Any] = {"benchmark": "gpu_check", "model": "open_clip ViT-B-32 (random weights) + CEIR head"}
    _section(results, "environment", environment)
    parts_box: dict[str, Any] = {}

    def build() -> dict[str, Any]:
        from ceir_onnx.benchmarking import open_clip_parts
        from ceir_onnx.export import export_bundle

        parts_box["parts"] = open_clip_parts("ViT-B-32")
        tmp = Path(tempfile.mkdtemp(prefix="ceir-gpu-check-"))
        parts_box["tmp"] = tmp
        parts_box["bundle"] = export_bundle(parts_box["parts"], tmp / "bundle", fp16=True, progress=False)
        manifest = json.loads((parts_box["bundle"] / "manifest.json").read_text())
        return {"status": "ok", "fp16_agreement_on_cpu": manifest["graphs"]["image"]["variants"]["fp16"][
            "agreement_to_fp32"]["latent"]}

    _section(results, "export", build)
    if "parts" in parts_box:
        _section(results, "torch_cuda", lambda: torch_cuda(parts_box["parts"], args.batch))
        _section(results, "onnxruntime_cuda", lambda: ort_cuda(parts_box["bundle"], args.batch))
    _section(results, "faiss_gpu", faiss_gpu)
    if "tmp" in parts_box:
        shutil.rmtree(parts_box["tmp"], ignore_errors=True)  # several hundred MB of graphs
    write_result(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
