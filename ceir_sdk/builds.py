"""Which onnxruntime and faiss builds are installed and active, and whether each sees a GPU.

Both come as a CPU and a GPU distribution that install the same module (onnxruntime /
onnxruntime-gpu, faiss-cpu / faiss-gpu), so "is my GPU used?" has three parts: which
distributions are installed (more than one is a broken install), which build the module that
imports actually is, and whether that build finds a device. ``ceir doctor`` prints this.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
from typing import Any

from ceir_sdk import _faiss

ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
_ORT_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def _versions(names: tuple[str, ...]) -> list[dict[str, str]]:
    out = []
    for name in names:
        try:
            out.append({"distribution": name, "version": importlib.metadata.version(name)})
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cuda_driver_devices() -> int | None:
    """CUDA devices the NVIDIA driver reports (what onnxruntime's CUDA provider would use);
    None when there is no driver library. onnxruntime itself has no device count before a
    session is created, so this is the honest question to ask of it."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    count = ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)


def faiss_report() -> dict[str, Any]:
    dists = _versions((*_faiss.CPU_DISTRIBUTIONS, *_faiss.GPU_DISTRIBUTIONS))
    out: dict[str, Any] = {"installed": dists, "conflict": len(dists) > 1}
    try:
        module = _faiss.load()
    except _faiss.MissingFaissError as exc:
        out.update({"active": None, "error": str(exc)})
        return out
    gpu = _faiss.is_gpu_build(module)
    out["active"] = {"version": getattr(module, "__version__", None), "build": "gpu" if gpu else "cpu",
                     "module": getattr(module, "__file__", None), "gpus_visible": _faiss.gpu_count(module)}
    return out


def onnxruntime_report() -> dict[str, Any]:
    dists = _versions(ONNXRUNTIME_DISTRIBUTIONS)
    out: dict[str, Any] = {"installed": dists, "conflict": len(dists) > 1}
    try:
        ort = importlib.import_module("onnxruntime")
        providers = list(ort.get_available_providers())
    except Exception as exc:  # a missing module, or a GPU build whose CUDA libraries fail to load
        out.update({"active": None, "error": f"onnxruntime cannot be imported: {exc}" if dists else
                    "onnxruntime is not installed (only ONNX bundles need it): pip install 'ceir-sdk[cpu]' "
                    "or 'ceir-sdk[gpu]'"})
        return out
    gpu = any(p in providers for p in _ORT_GPU_PROVIDERS)
    devices = cuda_driver_devices() if gpu else 0
    out["active"] = {"version": getattr(ort, "__version__", None), "build": "gpu" if gpu else "cpu",
                     "providers": providers, "module": getattr(ort, "__file__", None),
                     "gpus_visible": devices}
    return out


def report() -> dict[str, Any]:
    return {"onnxruntime": onnxruntime_report(), "faiss": faiss_report()}


def problems(rep: dict[str, Any]) -> list[str]:
    """What is wrong with these builds, each with the way out (empty when all is well)."""
    out = []
    for name, part in rep.items():
        dists = [f"{d['distribution']}=={d['version']}" for d in part["installed"]]
        if part["conflict"]:
            out.append(f"{name}: {' and '.join(dists)} are all installed and share one module; uninstall them all "
                       "and install one set: pip install 'ceir-sdk[cpu]' or 'ceir-sdk[gpu]'")
        active = part.get("active")
        if active and active["build"] == "gpu" and not active["gpus_visible"]:
            out.append(f"{name}: the GPU build is active but sees no GPU (driver, CUDA libraries or "
                       "CUDA_VISIBLE_DEVICES); it runs on the CPU")
        if name == "faiss" and active is None:
            out.append(f"faiss: {part.get('error')}")
    return out
