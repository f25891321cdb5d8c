"""Choosing onnxruntime execution providers, and saying so loudly when a GPU is missing."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from ceir_sdk.errors import BadInputError

log = logging.getLogger("ceir_onnx")

ONNXRUNTIME_MISSING = (
    "this needs onnxruntime, which is not installed here: pip install 'ceir-onnx[cpu]' (or 'ceir-onnx[gpu]' "
    "for NVIDIA GPUs; never both); with only OpenVINO installed ('ceir-onnx[openvino]') use "
    "backend='openvino' (or 'auto', which picks it)")


def onnxruntime_module() -> Any:
    """onnxruntime, imported on first use: a deployment with only the OpenVINO extra installed
    loads and runs bundles without it, and gets this message only where onnxruntime is needed."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BadInputError(f"{ONNXRUNTIME_MISSING} ({exc})") from exc
    return onnxruntime

ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


class ProviderWarning(RuntimeWarning):
    """A GPU execution provider was requested but is not active."""


def check_single_onnxruntime() -> list[str]:
    """Warn when more than one onnxruntime distribution is installed (they share a module)."""
    import importlib.metadata

    names = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
    found = []
    for name in names:
        try:
            found.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    if len(found) > 1:
        message = (
            f"WARNING: several onnxruntime distributions are installed ({', '.join(found)}); they overwrite "
            "each other's files. Uninstall all of them and install exactly one (README of ceir-onnx)."
        )
        log.warning(message)
        warnings.warn(message, ProviderWarning, stacklevel=3)
    return found


def resolve_providers(providers: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """Return (provider list in priority order, explicitly requested?).

    ``"auto"``/None: TensorRT and CUDA when this onnxruntime build has them, then CPU.
    Otherwise a name or list of names (aliases cpu, cuda, tensorrt accepted).
    """
    ort = onnxruntime_module()
    available = ort.get_available_providers()
    if providers is None or providers == "auto":
        chosen = [p for p in GPU_PROVIDERS if p in available]
        return [*chosen, "CPUExecutionProvider"], False
    names = [providers] if isinstance(providers, str) else list(providers)
    resolved = [ALIASES.get(n.lower(), n) if isinstance(n, str) else n for n in names]
    known = set(ort.get_all_providers())
    unknown = [n for n in resolved if n not in known]
    if unknown:
        # A typo ("gpu", "CudaExecutionProvider") would otherwise run on CPU without a word.
        raise BadInputError(
            f"unknown execution provider(s) {unknown}; use 'auto', one of {sorted(ALIASES)}, or onnxruntime "
            f"provider names (this build has {available})"
        )
    if "CPUExecutionProvider" not in resolved:
        resolved.append("CPUExecutionProvider")  # always keep a place to fall back to
    return resolved, True


def check_active(requested: list[str], active: Sequence[str], explicit: bool) -> list[str]:
    """Warn (logging + ProviderWarning) for each requested provider that is not active: GPU ones
    always, others (OpenVINO, DirectML, ...) when the user named them."""
    watched = [p for p in requested if p in GPU_PROVIDERS or (explicit and p != "CPUExecutionProvider")]
    missing = [p for p in watched if p not in active]
    if not missing:
        return []
    available = onnxruntime_module().get_available_providers()
    # In auto mode TensorRT is optional when CUDA is active; anything else is a real fall-back.
    if not explicit and "CUDAExecutionProvider" in active:
        missing = [p for p in missing if p != "TensorrtExecutionProvider"]
    for p in missing:
        if p not in GPU_PROVIDERS:
            hint = "this onnxruntime build lacks it or could not start it; install the onnxruntime build that has it"
        elif p not in available:
            hint = ("this onnxruntime build lacks it: install onnxruntime-gpu instead of onnxruntime "
                    "(pip uninstall onnxruntime; pip install 'ceir-onnx[gpu]')")
        else:
            hint = "the CUDA/cuDNN (or TensorRT) libraries or the GPU could not be loaded; see onnxruntime's log"
        message = f"WARNING: {p} was requested but is NOT active; running on {list(active)}. {hint}"
        log.warning(message)
        warnings.warn(message, ProviderWarning, stacklevel=3)
    return missing
