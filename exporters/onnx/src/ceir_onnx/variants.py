"""Reduced-precision variants of an exported graph and their measured agreement.

int8: dynamic quantization (weights int8, activations quantized per batch at run time) for
CPUs through onnxruntime, and static QDQ quantization (activation ranges fixed from calibration
images) for CPUs through OpenVINO. fp16: weights and compute in half precision with float32
inputs and outputs kept, for GPUs. Agreement is measured against the fp32 graph on given inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def downstream_nodes(model: Any, tensor: str) -> list[str]:
    """Names of the nodes that read ``tensor`` directly or through other nodes."""
    reached, found = {tensor}, set()
    grew = True
    while grew:  # to a fixed point: rewritten graphs are not always stored in order
        grew = False
        for n, node in enumerate(model.graph.node):
            if n not in found and any(i in reached for i in node.input):
                found.add(n)
                reached.update(node.output)
                grew = True
    return [node.name for n, node in enumerate(model.graph.node) if n in found and node.name]


def backbone_matmuls(model: Any, head_input: str) -> list[str]:
    """Names of the MatMul/Gemm nodes with weights that run before ``head_input``, in order."""
    head = set(downstream_nodes(model, head_input))
    weights = {t.name for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.name and n.name not in head
            and n.op_type in ("MatMul", "Gemm") and any(i in weights for i in n.input)]


def quantize_int8(
    src: Path, dst: Path, *, keep_float_after: str | None = None, keep_float: Sequence[str] = (),
    fuse: bool = True,
) -> int:
    """Dynamic int8 quantization of MatMul/Gemm; nodes after ``keep_float_after`` and the
    nodes named in ``keep_float`` stay float. Returns how many GELUs were fused (fuse_gelu;
    ``fuse=False`` leaves them as exported, for measuring what the fusion gains).

    The CEIR head z-scores concept activations by their (small) training spread, so it
    magnifies any error in the backbone features; quantizing the head as well adds error
    where it costs most and saves almost no time, so the head is left in float.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = _kept_float(src, keep_float_after, keep_float)
    # MatMul/Gemm carry almost all the weights and time of a ViT; per-channel keeps the
    # error of randomly scaled rows small. Attention and LayerNorm stay in float.
    with _without_preprocessing_advice():
        quantize_dynamic(
            src,
            dst,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_exclude=exclude,
        )
    return fuse_gelu(dst) if fuse else 0


def _kept_float(src: Path, keep_float_after: str | None, keep_float: Sequence[str]) -> list[str]:
    """The node names a quantizer must leave in float: everything reading ``keep_float_after``
    (the head) and the nodes named in ``keep_float``."""
    import onnx

    exclude = downstream_nodes(onnx.load(str(src), load_external_data=False), keep_float_after) \
        if keep_float_after else []
    exclude += list(keep_float)
    # The dynamic quantizer first rewrites each Gemm as MatMul (named "<gemm>_MatMul") + Add.
    return exclude + [f"{name}_MatMul" for name in exclude]


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """onnxruntime's quantizers advise their shape-inference pre-pass on the root logger, up to
    three times per call. That pass optimises the graph and may rename or merge nodes, and the
    nodes kept in float are named, so it is not run here, and its advice is dropped."""
    advice = _DropMessages("pre-processing")
    logging.getLogger().addFilter(advice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(advice)


def quantize_int8_static(
    src: Path, dst: Path, pixels: np.ndarray, *, input_name: str, keep_float_after: str | None = None,
    keep_float: Sequence[str] = (), batch_size: int = 8,
) -> int:
    """Static int8 quantization of MatMul/Gemm, as QuantizeLinear/DequantizeLinear pairs (QDQ)
    around them, with activation ranges calibrated on ``pixels``; returns how many GELUs were
    fused. The same nodes stay float as in :func:`quantize_int8`.

    Why a second int8 graph: OpenVINO turns a QDQ graph into int8 kernels (AMX/VNNI) with fixed
    scales, while it runs the dynamic graph's per-batch quantization slowly (0.75x torch fp32 on
    ViT-B-32 here; the static graph 2.65x, about its bf16 path). onnxruntime is the other way
    round: it runs this graph at about 0.8x its dynamic int8. So each backend runs the int8
    graph it is fast on, and `ceir tune` measures which path wins (docs/deploy.md). Fixed
    ranges clip activations the calibration images never reached, which is why the exporter
    measures this graph on images it was not calibrated on.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.starts = iter(range(0, len(pixels), batch_size))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.starts, None)
            return None if start is None else {input_name: pixels[start:start + batch_size]}

    exclude = _kept_float(src, keep_float_after, keep_float)
    with _without_preprocessing_advice():
        quantize_static(
            src, dst, Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=exclude,
        )
    return fuse_gelu(dst)


class _DropMessages(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def fuse_gelu(path: Path) -> int:
    """Rewrite the exported erf GELU (Div, Erf, Add, Mul, Mul) as one Gelu node, in place;
    returns how many were fused.

    Why: in the int8 graph the matrix products are fast, so the five element-wise passes of
    each unfused GELU are a large share of what is left (about 17% faster at one thread on
    ViT-B-32, min cosine to the unfused graph 0.9999). onnxruntime's own session optimizer
    does not match the pattern as torch's exporter writes it; its transformers fusion does.
    The node is onnxruntime's com.microsoft Gelu (same formula, exact erf), which OpenVINO's
    ONNX reader also runs. Only the int8 graph is rewritten: the fp32 graph stays the plain
    ONNX that the parity checks compare with torch.
    """
    import onnx
    from onnxruntime.transformers.fusion_gelu import FusionGelu
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(path)))
    before = sum(node.op_type == "Erf" for node in model.model.graph.node)
    FusionGelu(model).apply()
    fused = before - sum(node.op_type == "Erf" for node in model.model.graph.node)
    if fused:
        model.topological_sort()
        if not any(o.domain == "com.microsoft" for o in model.model.opset_import):
            model.model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
        onnx.save(model.model, str(path))
    return fused


def convert_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    # keep_io_types: callers still pass and receive float32; casts sit at the edges. (Its
    # node_block_list cannot keep the head in float32: it puts float16 casts between blocked
    # nodes, so the whole graph is converted.)
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    _toposort(half.graph)  # the converter appends its input casts last; onnx.checker requires order
    onnx.save(half, str(dst))
    onnx.checker.check_model(str(dst), full_check=True)


def _toposort(graph: Any) -> None:
    produced = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in produced for i in n.input)]
        if not ready:
            raise RuntimeError("graph has a cycle or a dangling input; cannot order it")
        ids = {id(n) for n in ready}
        for node in ready:
            ordered.append(node)
            produced.update(node.output)
        pending = [n for n in pending if id(n) not in ids]
    del graph.node[:]
    graph.node.extend(ordered)


def cpu_safe_level(precision: str, providers: list[str]) -> Any:
    """Graph optimisation level: onnxruntime 1.32 crashes (segfault) applying its CPU layout
    optimisations (ORT_ENABLE_ALL) to float16 graphs that end up on CPU, so fp16 always stops
    one level lower. Where a graph runs is only known after the session exists: any provider
    listed first (CUDA whose libraries fail to load, Azure) can leave the graph on CPU, and
    the layout passes of the last level target the CPU provider only."""
    import onnxruntime as ort

    del providers  # kept for callers; the level cannot safely depend on the request
    if precision == "fp16":
        return ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def run_graph(
    path: Path, feeds: dict[str, np.ndarray], providers: list[str] | None = None, *, batch_size: int | None = None
) -> list[np.ndarray]:
    """Run a graph on CPU (by default); ``batch_size`` splits the (single) input into batches.

    Dynamic int8 scales activations per tensor, so one batch's outputs depend on what else is
    in it: agreement is measured in the batches the runtime uses."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers = providers or ["CPUExecutionProvider"]
    options.graph_optimization_level = cpu_safe_level("fp16" if ".fp16." in path.name else "fp32", providers)
    session = ort.InferenceSession(str(path), options, providers=providers)
    if batch_size is None or len(feeds) != 1:
        return [np.asarray(o, dtype=np.float32) for o in session.run(None, feeds)]
    (name, x), = feeds.items()
    parts = [session.run(None, {name: x[i : i + batch_size]}) for i in range(0, len(x), batch_size)]
    return [np.concatenate([np.asarray(p[j], dtype=np.float32) for p in parts]) for j in range(len(parts[0]))]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denom, 1e-30)


def agreement(reference: list[np.ndarray], other: list[np.ndarray], names: list[str]) -> dict[str, Any]:
    """Per output: min and mean row cosine and max abs difference to the reference."""
    result: dict[str, Any] = {}
    for name, ref, out in zip(names, reference, other):
        cos = cosine_rows(ref, out)
        result[name] = {
            "min_cosine": float(cos.min()),
            "mean_cosine": float(cos.mean()),
            "max_abs_diff": float(np.abs(ref - out).max()),
        }
    return result
