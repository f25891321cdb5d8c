"""The CPU model and the vector features that decide which kernels a backend can use.

A tuning choice (``ceir tune``) is valid only on the CPU it was measured on: the same bundle
runs fastest in bf16 on a CPU with AMX and in int8 on one without; and a benchmark's figures
compare only on the same CPU. One reader for both: the ONNX runtime's tuning record
(the ONNX exporter's `ceir tune`) and every benchmark result (benchmarks/_results.py, ``machine``).
Standard library only, so the torch-free deploy path can import it.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

#: features that change which kernels onnxruntime and OpenVINO pick (matrix units, dot products)
FEATURE_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                 "amx_bf16", "amx_int8", "amx_fp16", "amx_tile", "neon", "asimd", "sve", "bf16", "i8mm")


def read_cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """``{"cpu_model", "cpu_features"}`` from /proc/cpuinfo (or the given text); on systems
    without it, the platform's processor name and no features."""
    model, flags = "", set()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "Features"):
            flags.update(value.split())
    return {"cpu_model": model or platform.processor() or platform.machine(),
            "cpu_features": [f for f in FEATURE_FLAGS if f in flags]}


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """This machine's CPU model and features (read once per process), and its usable cores."""
    info = read_cpu_info()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return {**info, "usable_cores": cores}
