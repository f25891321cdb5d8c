"""Export a CEIR model (backbone image/text encoders + concept head) to an ONNX bundle.

The core function :func:`export_bundle` takes the torch parts directly, so any backbone
that offers ``torch_modules()`` can be exported; :func:`export_model_dir` loads a fitted
model directory (``ceir_sdk.model.CEIRModel``) and feeds it in. torch is imported lazily.
"""

from __future__ import annotations

import gzip
import json
import logging
import platform
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceir_onnx import __version__
from ceir_onnx.attention import export_friendly_attention, rewritten
from ceir_onnx.bundle import FORMAT, FORMAT_VERSION, MANIFEST, file_entry, fingerprint, recognises, staged_directory
from ceir_onnx.runtime.preprocess import PreprocessConfig, iter_images, preprocess_one, to_rgb_image
from ceir_onnx.variants import agreement, convert_fp16, cosine_rows, quantize_int8, run_graph
from ceir_sdk.atomic import atomic_write_json
from ceir_sdk.errors import BadInputError
from ceir_sdk.plugin_bases.preprocess import check_preprocess_config

log = logging.getLogger("ceir_onnx")

DEFAULT_OPSET = 18
IMAGE_INPUT = "pixels"
IMAGE_OUTPUTS = ("concepts", "latent", "image_features")
TEXT_INPUT = "tokens"
TEXT_OUTPUTS = ("text_features",)
#: manifest "text_space": how a text query reaches the concepts. "backbone": the text graph is the
#: backbone's text tower, and its features go through the concept head like image features (every
#: bundle before concept models). "concept_model": the text graph is the separate concept model's
#: text tower (the model whose scores the projection was trained on), and a text is scored by its
#: cosine with the concepts' text embeddings, which are in that model's space; the head takes
#: backbone image features only.
TEXT_SPACES = ("backbone", "concept_model")
HEAD_INPUT = "features"
HEAD_OUTPUTS = ("concepts", "latent")
LATENT_INPUT = "concepts"
LATENT_OUTPUTS = ("latent",)
#: fp32 parity the exporter insists on before writing a bundle
FP32_TOLERANCE = 1e-4
#: batch size of the agreement runs of reduced-precision graphs (the runtime's default batch)
AGREEMENT_BATCH = 32
#: Given check images are kept in the bundle, preprocessed (float32, the graph's input), so that
#: `ceir tune` checks agreement on the user's own images later without being handed them again;
#: capped because each 224 px image is 0.6 MB.
CHECK_PIXELS_FILE = "check_pixels.safetensors"
CHECK_PIXELS_STORED = 16
#: the static (QDQ) int8 image graph that the OpenVINO backend runs (variants["int8"]["static"])
INT8_STATIC_FILE = "image.int8.static.onnx"
#: fewer check images than this calibrate the static int8 graph's ranges noticeably worse
INT8_STATIC_ENOUGH = 16
#: int8 target: min row cosine of latents and concepts to fp32 on the check images; the
#: last backbone layers are kept in float, a few at a time, until it is met
INT8_MIN_COSINE = 0.999
#: never keep more than this share of the backbone's weight MatMuls in float
INT8_MAX_FLOAT_SHARE = 0.5
#: the bundle's image features (runtime preprocessing + image graph) against the backbone's own
#: encode_images on the same decoded images: min row cosine below this refuses the export. Above
#: what a real mismatch gives (0.66-0.91 for a wrong mean/std on a ViT, 0.96 on a small convnet),
#: far below what mixed precision costs a backbone encoding on a GPU (bf16 autocast: 0.99995 for a
#: ViT-B-32, measured on CPU).
BACKBONE_MIN_COSINE = 0.995


@dataclass
class ExportParts:
    """Everything a bundle is made from, independent of how the model was built."""

    image_module: Any  # torch module: pixels (B, 3, S, S) float32 -> features (B, D)
    head_module: Any  # torch module: features (B, D) -> (concepts_z (B, C), latent_mean (B, L))
    concepts: Sequence[str]
    concept_text_embeddings: np.ndarray  # (C, D) float32, L2-normalised
    preprocess: dict[str, Any]
    tokenizer_info: dict[str, Any]  # {"kind": "clip-bpe", "context_length": int, "vocab_file": path}
    text_module: Any = None  # torch module: tokens (B, context_length) int64 -> features (B, D)
    # torch module: z-scored concepts (B, C) -> latent mean (B, L); default: head_module.latent
    latent_module: Any = None
    model_info: dict[str, Any] = field(default_factory=dict)  # backbone spec, latent model, provenance
    # (C,) z-score from which each concept counts as present (ceir_sdk.model.presence); None: z > 0
    presence_thresholds: np.ndarray | None = None
    # whether a description needs the concepts among its words (ceir_sdk.concepts.generality)
    presence_by_parts: bool = True
    # where text queries and concept_text_embeddings live (TEXT_SPACES); with "concept_model",
    # text_module and tokenizer_info are the concept model's, and the embeddings are of its width
    text_space: str = "backbone"
    # the backbone's own encoder, (decoded RGB PIL images) -> features (N, D): the model the bundle
    # must reproduce. Export compares the bundle with it (BACKBONE_MIN_COSINE); None: not measured
    reference_encoder: Callable[[list[Any]], np.ndarray] | None = None


def _image_graph_module(parts: ExportParts) -> Any:
    import torch

    class ImageGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = parts.image_module
            self.head = parts.head_module

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            features = self.image(pixels)
            concepts, latent = self.head(features)
            return concepts, latent, features

    return ImageGraph().eval()


def _export_graph(module: Any, example: Any, path: Path, input_name: str, outputs: Sequence[str], opset: int) -> None:
    import onnx
    import torch

    module = module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            None,
            dynamo=True,
            input_names=[input_name],
            output_names=list(outputs),
            # an example batch of >= 2 plus a named dim keeps the batch dynamic
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            opset_version=opset,
            verbose=False,
        )
    if program is None:  # only when an output file is given, which we never do
        raise RuntimeError("torch.onnx.export returned no program")
    model = program.model_proto
    model.producer_name = "ceir-onnx"
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def _export_checked(module: Any, inputs: np.ndarray, path: Path, input_name: str, outputs: Sequence[str],
                    opset: int) -> dict[str, Any]:
    """Export a small graph, then refuse it unless onnxruntime matches torch within FP32_TOLERANCE."""
    import torch

    _export_graph(module, torch.from_numpy(np.ascontiguousarray(inputs[:2])), path, input_name, outputs, opset)
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(np.ascontiguousarray(inputs)))
    ref = [t.float().numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]
    parity = agreement(ref, run_graph(path, {input_name: inputs}), list(outputs))
    worst = max(v["max_abs_diff"] for v in parity.values())
    if worst > FP32_TOLERANCE:
        raise BadInputError(
            f"exported {path.name} disagrees with torch (max abs diff {worst:.2e} > {FP32_TOLERANCE}); "
            "this model uses an op the exporter does not translate faithfully"
        )
    return {**_io_spec(path), "variants": {"fp32": {"file": path.name, "agreement_to_torch": parity}}}


def _int8_variant(stage: Path, pixels: np.ndarray, fp32_out: list[np.ndarray], target: float | None
                  ) -> dict[str, Any] | str:
    """Quantize the image graph; while the agreement to fp32 is below ``target``, keep more of
    the backbone's last weight MatMuls in float (they feed the error-magnifying head most
    directly), up to INT8_MAX_FLOAT_SHARE of them. A backbone without weight MatMuls (a
    convolutional one) has nothing to quantise: then no copy is written, and the reason is
    returned instead of the variant."""
    import onnx

    from ceir_onnx.variants import backbone_matmuls

    src, dst = stage / "image.onnx", stage / "image.int8.onnx"
    matmuls = backbone_matmuls(onnx.load(str(src), load_external_data=False), "image_features")
    if not matmuls:
        return ("the backbone has no weight MatMul/Gemm for dynamic int8 quantisation to act on (a convolutional "
                "backbone), so an int8 copy would be the fp32 graph under another name; use image.onnx")
    step = max(1, round(len(matmuls) / 12))
    limit = int(INT8_MAX_FLOAT_SHARE * len(matmuls))
    keep = 0
    while True:
        kept = matmuls[len(matmuls) - keep:] if keep else []
        gelus = quantize_int8(src, dst, keep_float_after="image_features", keep_float=kept)
        out = run_graph(dst, {IMAGE_INPUT: pixels}, batch_size=AGREEMENT_BATCH)
        agree = agreement(fp32_out, out, list(IMAGE_OUTPUTS))
        worst = min(agree["latent"]["min_cosine"], agree["concepts"]["min_cosine"])
        if target is None or worst >= target or keep + step > limit:
            break
        keep += step
    return {
        "file": dst.name,
        "intended_for": "CPU",
        "quantized": "backbone MatMul/Gemm (dynamic, per-channel int8 weights); head in float32",
        "fused": {"Gelu": gelus},
        "kept_float": {"backbone_weight_matmuls": f"last {keep} of {len(matmuls)}", "nodes": kept},
        "target_min_cosine": target,
        "target_met": None if target is None else worst >= target,
        "agreement_to_fp32": agree,
    }


def _int8_static_variant(stage: Path, pixels: np.ndarray, fp32_out: list[np.ndarray], dynamic: dict[str, Any],
                         target: float | None) -> dict[str, Any] | str:
    """The OpenVINO int8 graph (static QDQ, ceir_onnx.variants.quantize_int8_static), keeping
    float the same nodes as the dynamic graph, calibrated on all the check images.

    Fixed ranges clip what calibration never reached, so an in-sample figure flatters it: a
    probe graph calibrated on every other image is measured on the rest, and that (lower, since
    the shipped graph saw twice as many images) figure is the one held to ``target``. On the
    test model, unseen images' concept agreement went 0.9986 / 0.9992 / 0.9998 calibrating on
    6 / 12 / 32 images. Returns the reason instead of the variant when it misses ``target``."""
    from ceir_onnx.variants import quantize_int8_static

    dst = stage / INT8_STATIC_FILE
    kept = dynamic["kept_float"]["nodes"]

    def quantized(calibration: np.ndarray, path: Path) -> int:
        return quantize_int8_static(stage / "image.onnx", path, calibration, input_name=IMAGE_INPUT,
                                    keep_float_after="image_features", keep_float=kept)

    def held_out_agreement() -> dict[str, Any]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ceir-int8-probe-") as tmp:  # not part of the bundle
            probe = Path(tmp) / "probe.onnx"
            quantized(pixels[0::2], probe)
            return agreement([o[1::2] for o in fp32_out],
                             run_graph(probe, {IMAGE_INPUT: pixels[1::2]}, batch_size=AGREEMENT_BATCH),
                             list(IMAGE_OUTPUTS))

    held_out = len(pixels) >= 4
    unseen = held_out_agreement() if held_out else None
    gelus = quantized(pixels, dst)
    in_sample = agreement(fp32_out, run_graph(dst, {IMAGE_INPUT: pixels}, batch_size=AGREEMENT_BATCH),
                          list(IMAGE_OUTPUTS))
    agree = unseen or in_sample
    worst = min(agree["latent"]["min_cosine"], agree["concepts"]["min_cosine"])
    if target is not None and worst < target:
        dst.unlink()
        return (f"static int8 (for OpenVINO) agrees with fp32 at min cosine {worst:.6f} on images it was not "
                f"calibrated on, below the target {target}; OpenVINO's int8 runs the dynamic graph instead. "
                "More (and more varied) --check-images calibrate it better")
    if len(pixels) < INT8_STATIC_ENOUGH:
        log.warning("int8: the static graph for OpenVINO is calibrated on %d images; %d or more representative "
                    "ones (--check-images DIR) set its ranges better", len(pixels), INT8_STATIC_ENOUGH)
    return {
        "file": dst.name,
        "intended_for": "CPU through OpenVINO (onnxruntime runs the dynamic graph faster)",
        "quantized": "backbone MatMul/Gemm (static QDQ: per-channel int8 weights, uint8 activations with "
                     "calibrated ranges); head in float32",
        "fused": {"Gelu": gelus},
        "kept_float": dynamic["kept_float"],
        "calibration": {"images": len(pixels), "method": "MinMax"},
        "target_min_cosine": target,
        "agreement_to_fp32": {**agree, "n": len(pixels[1::2]) if held_out else len(pixels),
                              "on": "images not used for calibration (a graph calibrated on the other half)"
                              if held_out else "the calibration images (fewer than 4 given)",
                              "measured_with": "onnxruntime CPUExecutionProvider"},
        "agreement_in_sample": in_sample,
    }


def _latent_module(parts: ExportParts) -> Any:
    return parts.latent_module if parts.latent_module is not None else getattr(parts.head_module, "latent", None)


def synthetic_images(n: int = 12, seed: int = 0) -> list[np.ndarray]:
    """Deterministic photo-like test images (gradients, blobs, texture) of varied sizes."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = (256, 256) if i % 2 == 0 else (375, 500)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = rng.uniform(0, 255, 3)[None, None, :] * (0.5 + 0.5 * np.sin(xx / rng.uniform(10, 60))[..., None])
        base += rng.uniform(0, 120, 3)[None, None, :] * (yy / h)[..., None]
        cy, cx, r = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(20, 90)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < r**2
        base[blob] = rng.uniform(0, 255, 3)
        base += rng.normal(0, 8, base.shape)
        images.append(np.clip(base, 0, 255).astype(np.uint8))
    return images


def _io_spec(path: Path) -> dict[str, list[dict[str, Any]]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in t.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
            out.append({"name": v.name, "dtype": dtype, "shape": shape})
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    import ceir_sdk

    return {
        "ceir_sdk": ceir_sdk.__version__,
        "ceir_onnx": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def export_bundle(
    parts: ExportParts,
    out_dir: str | Path,
    *,
    fp16: bool = False,
    int8: bool = False,
    int8_min_cosine: float | None = INT8_MIN_COSINE,
    int8_static: bool = True,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    check_images: Any = None,
    progress: bool = True,
) -> Path:
    """Write an ONNX deployment bundle to ``out_dir`` and return its path.

    ``check_images`` (a folder, paths or arrays) are the inputs on which fp32 parity with
    torch and the agreement of the fp16/int8 variants are measured; without them, a set
    of synthetic images is used and the manifest says so. With ``int8``, ``int8_static`` also
    writes the static int8 graph the OpenVINO backend runs, calibrated on the check images.
    """
    import torch
    from tqdm.auto import tqdm

    concepts = [str(c) for c in parts.concepts]
    text_emb = np.asarray(parts.concept_text_embeddings, dtype=np.float32)
    if text_emb.ndim != 2 or text_emb.shape[0] != len(concepts):
        raise BadInputError(
            f"concept_text_embeddings must be (n_concepts={len(concepts)}, D); got {text_emb.shape}"
        )
    if parts.text_space not in TEXT_SPACES:
        raise BadInputError(f"text_space must be one of {', '.join(TEXT_SPACES)}; got {parts.text_space!r}")
    pre = PreprocessConfig.from_dict(parts.preprocess, strict=True)  # the keys the runtime needs and takes
    check_preprocess_config(parts.preprocess, where="the backbone's preprocess_config()")  # and their values
    size = pre.image_size
    vocab = Path(parts.tokenizer_info.get("vocab_file", ""))
    if parts.text_module is not None and not vocab.is_file():
        raise BadInputError(f"tokenizer vocab file {vocab} not found; the backbone's tokenizer_info() must name it")

    source = "given images" if check_images is not None else "synthetic images"
    images = iter_images(check_images) if check_images is not None else synthetic_images()
    # Decoded once, as every ceir path decodes (ceir_sdk.data): the same RGB images go to the
    # backbone's own encoder and, preprocessed as its preprocess_config() says, to the graph.
    decoded = [to_rgb_image(im) for im in images]
    pixels = np.stack([preprocess_one(im, pre) for im in decoded]).astype(np.float32)
    if len(pixels) < 2:
        pixels = np.concatenate([pixels, pixels[::-1] * 0.5])

    steps = 4 + int(fp16) + int(int8)
    bar = tqdm(total=steps, desc="export onnx", disable=not progress)
    with staged_directory(out_dir, overwrite=overwrite) as stage:
        image_graph = _image_graph_module(parts)
        # Exported with fewer transposes (ceir_onnx.attention); checked below against the original.
        with export_friendly_attention(image_graph) as wrappers:
            example = torch.from_numpy(pixels[:2].copy())
            with torch.no_grad():  # one eager call counts the rewrites the forward runs (export's trace cannot)
                image_graph(example)
            attention_rewritten = rewritten(wrappers)
            _export_graph(image_graph, example, stage / "image.onnx", IMAGE_INPUT, IMAGE_OUTPUTS, opset)
        bar.update()

        with torch.no_grad():
            ref = [t.float().numpy() for t in image_graph(torch.from_numpy(pixels))]
        fp32_out = run_graph(stage / "image.onnx", {IMAGE_INPUT: pixels})
        parity = agreement(ref, fp32_out, list(IMAGE_OUTPUTS))
        worst = max(v["max_abs_diff"] for k, v in parity.items() if k != "image_features")
        if worst > FP32_TOLERANCE:
            raise BadInputError(
                f"exported image graph disagrees with torch (max abs diff {worst:.2e} > {FP32_TOLERANCE}); "
                "this model uses an op the exporter does not translate faithfully"
            )
        to_backbone = None
        if parts.reference_encoder is not None:
            to_backbone = _backbone_agreement(parts, decoded, fp32_out[2][: len(decoded)], source)
        image_variants: dict[str, Any] = {
            "fp32": {"file": "image.onnx", "intended_for": "CPU and GPU", "agreement_to_torch": parity}
        }
        not_written: dict[str, str] = {}
        if int8:
            int8_variant = _int8_variant(stage, pixels, fp32_out, int8_min_cosine)
            if isinstance(int8_variant, str):
                not_written["int8"] = int8_variant
                log.warning("int8: nothing to quantise, no int8 copy written: %s", int8_variant)
            else:
                image_variants["int8"] = int8_variant
                if int8_static:
                    static = _int8_static_variant(stage, pixels, fp32_out, int8_variant, int8_min_cosine)
                    if isinstance(static, str):
                        not_written["int8_static"] = static
                        log.warning("int8: %s", static)
                    else:
                        int8_variant["static"] = static
            bar.update()
        if fp16:
            convert_fp16(stage / "image.onnx", stage / "image.fp16.onnx")
            image_variants["fp16"] = {
                "file": "image.fp16.onnx",
                "intended_for": "GPU (CUDA/TensorRT); runs slowly on CPU",
                "agreement_to_fp32": agreement(
                    fp32_out, run_graph(stage / "image.fp16.onnx", {IMAGE_INPUT: pixels}, batch_size=AGREEMENT_BATCH),
                    list(IMAGE_OUTPUTS),
                ),
                "measured_with": "CPUExecutionProvider",
            }
            bar.update()

        graphs: dict[str, Any] = {"image": {**_io_spec(stage / "image.onnx"), "variants": image_variants,
                                            "agreement_to_backbone": to_backbone,
                                            "export_rewrites": {"attention": attention_rewritten}}}
        if not_written:
            graphs["image"]["not_written"] = not_written

        # Small graphs for queries that do not start from pixels: text features through the
        # head (text search), and edited concept activations to a latent (concept edits).
        rng = np.random.default_rng(0)
        feats = np.concatenate([ref[2], ref[2][::-1] * rng.uniform(0.5, 2.0, (len(ref[2]), 1))]).astype(np.float32)
        graphs["head"] = _export_checked(parts.head_module, feats, stage / "head.onnx",
                                         HEAD_INPUT, HEAD_OUTPUTS, opset)
        latent_module = _latent_module(parts)
        if latent_module is not None:
            edited = ref[0] + rng.normal(0, 1.0, ref[0].shape) * (rng.random(ref[0].shape) < 0.2)
            acts = np.concatenate([ref[0], edited]).astype(np.float32)
            graphs["latent"] = _export_checked(latent_module, acts, stage / "latent.onnx",
                                               LATENT_INPUT, LATENT_OUTPUTS, opset)
        bar.update()
        tokenizer: dict[str, Any] | None = None
        if parts.text_module is not None:
            from ceir_onnx.runtime.tokenizer import ClipTokenizer

            ctx = int(parts.tokenizer_info.get("context_length", 77))
            tokens = ClipTokenizer(vocab, ctx)(["a photo", "striped fur", *concepts[:6]])
            _export_graph(parts.text_module, torch.from_numpy(tokens), stage / "text.onnx",
                          TEXT_INPUT, TEXT_OUTPUTS, opset)
            with torch.no_grad():
                text_ref = [parts.text_module.eval()(torch.from_numpy(tokens)).float().numpy()]
            text_parity = agreement(text_ref, run_graph(stage / "text.onnx", {TEXT_INPUT: tokens}),
                                    list(TEXT_OUTPUTS))
            if text_emb.shape[1] != text_ref[0].shape[1] and parts.text_space == "concept_model":
                raise BadInputError(
                    f"the text graph gives {text_ref[0].shape[1]}-dimensional features but the concept text "
                    f"embeddings are {text_emb.shape[1]}-dimensional; with text_space 'concept_model' both must "
                    "come from the concept model")
            # The same refusal as the image and head graphs: text search must match torch as well.
            worst_text = text_parity["text_features"]["max_abs_diff"]
            if worst_text > FP32_TOLERANCE:
                raise BadInputError(
                    f"exported text graph disagrees with torch (max abs diff {worst_text:.2e} > {FP32_TOLERANCE})")
            graphs["text"] = {**_io_spec(stage / "text.onnx"),
                              "variants": {"fp32": {"file": "text.onnx", "agreement_to_torch": text_parity}}}
            (stage / "tokenizer").mkdir()
            vocab_name = vocab.name if vocab.name.endswith(".gz") else vocab.name + ".gz"
            if vocab.name.endswith(".gz"):
                shutil.copyfile(vocab, stage / "tokenizer" / vocab_name)
            else:
                with open(vocab, "rb") as src, gzip.open(stage / "tokenizer" / vocab_name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            tokenizer = {"kind": parts.tokenizer_info.get("kind", "clip-bpe"), "context_length": ctx,
                         "vocab_file": f"tokenizer/{vocab_name}", "clean": "lower"}
        bar.update()

        from ceir_sdk.atomic import save_safetensors_file

        (stage / "concepts.json").write_text(json.dumps(concepts, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        save_safetensors_file({"concept_text_embeddings": text_emb}, stage / "concepts.safetensors")

        check_pixels = None
        if check_images is not None:
            stored = np.ascontiguousarray(pixels[:CHECK_PIXELS_STORED])
            save_safetensors_file({"pixels": stored}, stage / CHECK_PIXELS_FILE)
            check_pixels = {"file": CHECK_PIXELS_FILE, "n": len(stored), "of": len(pixels),
                            "what": "the given check images, preprocessed as the runtime does (the image graph's "
                                    "input); `ceir tune` checks agreement on them by default"}

        files = sorted(p for p in stage.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": _versions(),
            "opset": opset,
            "model": parts.model_info,
            "n_concepts": len(concepts),
            # the width of the head's input (backbone image features); texts' width below
            "embed_dim": int(ref[2].shape[1]),
            "text_embed_dim": int(text_emb.shape[1]),
            "text_space": parts.text_space,
            "latent_dim": int(ref[1].shape[1]),
            "preprocess": {**parts.preprocess, "image_size": size},
            "tokenizer": tokenizer,
            "graphs": graphs,
            "agreement_inputs": {"source": source, "n": len(pixels), "batch_size": AGREEMENT_BATCH},
            **({"check_pixels": check_pixels} if check_pixels else {}),
            "concepts_file": "concepts.json",
            "concept_embeddings_file": "concepts.safetensors",
            # JSON has no infinity: null marks a concept that is never present.
            "presence_thresholds": None if parts.presence_thresholds is None else [
                float(t) if np.isfinite(t) else None for t in np.asarray(parts.presence_thresholds, np.float64)],
            "presence_by_parts": parts.presence_by_parts,
            "files": {p.relative_to(stage).as_posix(): file_entry(p) for p in files},
        }
        atomic_write_json(stage / MANIFEST, manifest)
        bar.update()
    bar.close()
    return Path(out_dir).resolve()


def _backbone_agreement(parts: ExportParts, decoded: list[Any], bundle_features: np.ndarray,
                        source: str) -> dict[str, Any]:
    """The bundle's image features against the backbone's own encode_images on the same decoded
    images; refuses the export below BACKBONE_MIN_COSINE. The fp32 check above feeds torch and
    onnxruntime the same (exporter-made) pixels, so only this one sees a backbone whose
    preprocess_config() disagrees with what its encoder does."""
    assert parts.reference_encoder is not None
    # One call per image size: a backbone that stacks its input into one array (N, H, W, 3) can
    # take each group as it comes, and every backbone sees real images, not the exporter's pixels.
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(decoded):
        by_size.setdefault(image.size, []).append(i)
    own = np.zeros((len(decoded), bundle_features.shape[1]), np.float32)
    for rows in by_size.values():
        got = np.asarray(parts.reference_encoder([decoded[i] for i in rows]), dtype=np.float32)
        if got.shape != (len(rows), bundle_features.shape[1]):
            raise BadInputError(
                f"the backbone's encode_images gave shape {got.shape} for {len(rows)} images, but the exported "
                f"image module gives {bundle_features.shape[1]} features per image: torch_modules()['image'] is "
                "not the model encode_images runs")
        own[rows] = got
    cos = cosine_rows(own, bundle_features)
    worst, mean = float(cos.min()), float(cos.mean())
    measured: dict[str, Any] = {"min_cosine": worst, "mean_cosine": mean, "n": len(cos),
                "threshold": BACKBONE_MIN_COSINE,
                "measured_with": f"the backbone's own encode_images on the {source}, decoded to RGB, against "
                                 "the runtime's preprocessing and the fp32 image graph"}
    if worst < BACKBONE_MIN_COSINE:
        pre = ", ".join(f"{k}={v}" for k, v in parts.preprocess.items())
        raise BadInputError(
            f"the exported bundle does not reproduce the backbone: on {len(cos)} {source} its image features agree "
            f"with the backbone's own encode_images at min cosine {worst:.3f} (mean "
            f"{mean:.3f}; at least {BACKBONE_MIN_COSINE} is required). The likely cause is "
            f"preprocessing: the bundle resizes and normalises as the backbone's preprocess_config() says ({pre}), "
            "and that is not what its encode_images does (check image_size, resize, crop, interpolation, mean and "
            "std against your transform; docs/plugins.md). Otherwise torch_modules()['image'] is not the module "
            "encode_images runs. No bundle was written")
    return measured


def _text_parts(model_like: Any, name: str) -> tuple[Any, dict[str, Any]]:
    """(text module or None, tokenizer_info) of a backbone or concept model, checked for the runtime."""
    torch_modules = getattr(model_like, "torch_modules", None)
    modules = torch_modules() if callable(torch_modules) else {}
    if modules.get("text") is None:
        return None, {}
    info_of = getattr(model_like, "tokenizer_info", None)
    tokenizer_info = dict(info_of()) if callable(info_of) else {}
    if tokenizer_info.get("kind") != "clip-bpe":
        raise BadInputError(
            f"{name} has a text module, but the ONNX runtime tokenizes only CLIP BPE and its "
            f"tokenizer_info() says {tokenizer_info or 'nothing'}: give tokenizer_info() with kind "
            "'clip-bpe', context_length and vocab_file, or leave 'text' out of torch_modules() for an "
            "image-only bundle")
    return modules["text"], tokenizer_info


def parts_from_model(model: Any) -> ExportParts:
    """Collect the export parts from a fitted ``ceir_sdk.model.CEIRModel``.

    The image graph is always backbone + projection + latent encoder: a separate concept model
    (the CLIP whose scores the projection learned) is not needed to embed images. Text queries
    go through the concept model's text tower in that case (``text_space`` "concept_model")."""
    backbone = model.backbone
    name = getattr(backbone, "name", type(backbone).__name__)
    torch_modules = getattr(backbone, "torch_modules", None)
    modules = torch_modules() if callable(torch_modules) else {}
    if modules.get("image") is None:
        raise BadInputError(
            f"backbone {name!r} gives no image module to export: its torch_modules() must return "
            "{\"image\": module(pixels) -> features} (and \"text\" for text queries); see docs/plugins.md")
    latent = getattr(model, "latent_model", None)
    info = {
        "backbone": backbone.spec(),
        "latent_model": getattr(latent, "name", None),
        "latent_dim": getattr(latent, "latent_dim", None),
    }
    text_space = "backbone"
    if getattr(model, "concept_targets", "backbone") == "concept model":
        text_space = "concept_model"
        concept_model = model.concept_model  # None when only its features were given: no text graph
        info["concept_model"] = None if concept_model is None else concept_model.spec()
        text_module: Any = None
        tokenizer_info: dict[str, Any] = {}
        if concept_model is not None:
            text_module, tokenizer_info = _text_parts(concept_model,
                                                      f"concept model {concept_model.spec().get('name')!r}")
    else:
        text_module, tokenizer_info = _text_parts(backbone, f"backbone {name!r}")
    return ExportParts(
        image_module=modules["image"],
        head_module=model.head_module(),
        concepts=list(model.concepts),
        concept_text_embeddings=np.asarray(model.concept_text_embeddings(), dtype=np.float32),
        preprocess=backbone.preprocess_config(),
        tokenizer_info=tokenizer_info,
        text_module=text_module,
        latent_module=model.latent_model.encoder_module(),
        model_info=info,
        presence_thresholds=getattr(model, "presence_thresholds", None),
        presence_by_parts=bool(getattr(model, "presence_by_parts", True)),
        text_space=text_space,
        reference_encoder=lambda images: backbone.encode_images(images, progress=False),
    )


def export_model_dir(model_dir: str | Path, out_dir: str | Path, **options: Any) -> Path:
    """``ceir export onnx MODEL_DIR OUT_DIR``: load a fitted model directory and export it."""
    try:
        from ceir_sdk.model import CEIRModel
    except ImportError as exc:  # the fitted-model package is part of the training install
        raise BadInputError(
            f"cannot load {model_dir}: ceir_sdk.model is unavailable ({exc}); install ceir-sdk[train]"
        ) from exc
    model = CEIRModel.load(model_dir)
    parts = parts_from_model(model)
    parts.model_info["source_dir"] = str(Path(model_dir).resolve())
    return export_bundle(parts, out_dir, **options)


class OnnxExporter:
    """The ``onnx`` exporter registered with ceir (contracts.Exporter)."""

    name = "onnx"

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults

    def export(self, model_dir: str | Path, out_dir: str | Path, **options: Any) -> Path:
        return export_model_dir(model_dir, out_dir, **{**self.defaults, **options})

    # What the core needs to use a bundle without knowing its format (contracts.Exporter):
    # recognise one, name the numbers in it, and open it as an Encoder.
    def recognises(self, path: str | Path) -> bool:
        """Whether ``path`` is a bundle this exporter wrote (its manifest says so; nothing verified)."""
        return recognises(path)

    def fingerprint(self, path: str | Path) -> str | None:
        """The fp32 image graph's checksum: it holds the backbone, the concept head and the latent
        encoder, so it changes whenever the model's numbers do. None when the manifest does not say."""
        return fingerprint(path)

    def open(self, bundle_dir: str | Path, **options: Any) -> Any:
        """Load a bundle with the torch-free runtime, so the core can use one without
        importing this plugin: ``get_exporter("onnx").open(bundle_dir)``. The runtime is
        an Encoder (``ceir_sdk.index.Encoder``) as well as the full API.

        ``options`` go to :class:`ceir_onnx.runtime.Runtime` (precision, providers,
        threads, spinning, batch_size, decode_workers, verify, on_error)."""
        from ceir_onnx.runtime import Runtime

        return Runtime(bundle_dir, **options)
