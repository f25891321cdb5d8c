"""Inference backends of the runtime: onnxruntime (always) and OpenVINO (optional extra).

Both run the bundle's own ONNX graphs. OpenVINO is Intel's runtime; on CPUs with bf16 matrix
units (AMX, AVX512-BF16) it runs float graphs in bf16, which onnxruntime's CPU provider does
not (docs/deploy.md, Backends). Only the image tower is reduced: in bf16/fp16 the backbone part
of the image graph runs in that precision and its features go through the bundle's fp32 head
graph, so the concept head and latent encoder stay in float32, as in the int8 graph.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError, IncompatibleFileError

BACKENDS = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8", "fp16")
#: precisions whose image graph runs the backbone in reduced precision and the head in fp32
HINTED = {"bf16": "bf16", "fp16": "f16"}
OPENVINO_MISSING = ("the OpenVINO backend needs the openvino package, which is not installed (or fails to "
                    "import) here: pip install 'ceir-onnx[openvino]', or use backend='onnxruntime' "
                    "(or 'auto', which uses what is installed)")


def module_version(module: str, distribution: str) -> str | None:
    """The installed version of ``distribution`` when ``module`` can be imported, else None.

    Cheap (no import): the tuning cache is looked up on every load. A module set to None in
    sys.modules counts as absent, as Python's import does."""
    if module in sys.modules and sys.modules[module] is None:
        return None
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def installed_backends() -> dict[str, str]:
    """{backend: version} of the backends this environment can use."""
    found = {}
    for name in BACKENDS:
        version = module_version(name, "onnxruntime" if name == "onnxruntime" else "openvino")
        if name == "onnxruntime" and version == "unknown":  # onnxruntime-gpu and friends
            import onnxruntime

            version = onnxruntime.__version__
        if version is not None:
            found[name] = version
    return found


def import_openvino() -> Any:
    """The openvino module, or a clear error saying how to get it."""
    try:
        return importlib.import_module("openvino")
    except ImportError as exc:
        raise BadInputError(OPENVINO_MISSING + f" ({exc})") from exc


_core_lock = threading.Lock()
_core: Any = None


def openvino_core() -> Any:
    """One OpenVINO Core per process (it holds the loaded device plugins)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = import_openvino().Core()
        return _core


def openvino_capabilities() -> list[str]:
    """What the CPU plugin says this CPU computes natively ("FP32", "BF16", "FP16", "INT8", ...)."""
    return [str(c) for c in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def openvino_supports(precision: str) -> bool:
    if precision in ("fp32", "int8"):
        return True
    return precision.upper() in openvino_capabilities()


class OpenVINOGraph:
    """One compiled graph with onnxruntime's ``run(None, feeds)`` call, usable from many threads
    (an infer request per thread: a request's buffers are overwritten by its next call)."""

    def __init__(self, path: Path, *, hint: str = "f32", threads: int | None = None,
                 outputs: tuple[str, ...] | None = None, label: str | None = None) -> None:
        ov = import_openvino()
        core = openvino_core()
        try:
            model = core.read_model(str(path))
            if outputs is not None:  # a sub-graph: only what these outputs need is compiled
                model = ov.Model([model.output(name) for name in outputs], model.get_parameters(), path.stem)
            # The hint is always set: OpenVINO's default on a CPU with bf16 units is bf16, and
            # fp32 must mean fp32. One stream, latency: one batch at a time uses every thread.
            config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                      "NUM_STREAMS": 1}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise IncompatibleFileError(
                f"OpenVINO {ov.__version__} cannot load {path}: {exc}; use backend='onnxruntime', or "
                "re-export the bundle / upgrade openvino") from exc
        self.path, self.hint, self.label = path, hint, label or hint
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._local = threading.local()

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self._request().infer(feeds)  # copies outputs (share_outputs=False)
        values = [np.asarray(result[out]) for out in self.compiled.outputs]
        if output_names is None:
            return values
        return [values[self.output_names.index(name)] for name in output_names]

    def get_providers(self) -> list[str]:
        return [f"OpenVINO CPU ({self.label})"]


class SplitImageGraph:
    """The image graph with the backbone in reduced precision and the concept head in fp32:
    pixels -> backbone features (bf16/fp16 compute) -> the bundle's fp32 head graph."""

    def __init__(self, backbone: OpenVINOGraph, head: Any) -> None:
        self.backbone, self.head = backbone, head

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (features,) = self.backbone.run(None, feeds)
        features = np.ascontiguousarray(features, dtype=np.float32)
        concepts, latent = self.head.run(None, {"features": features})
        values = {"concepts": concepts, "latent": latent, "image_features": features}
        return [values[name] for name in (output_names or ("concepts", "latent", "image_features"))]

    def get_providers(self) -> list[str]:
        return [*self.backbone.get_providers(), "head: OpenVINO CPU (f32)"]
