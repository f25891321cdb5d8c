"""The sessions of one bundle: backend (onnxruntime or OpenVINO), providers, precision, options,
and each graph's session.

The image graph is opened at load (it is what every embed runs); the text, head and latent
graphs and the tokenizer on first use, after checking that their files are still the ones the
manifest described at load (a bundle re-exported in place must not mix two models).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ceir_onnx.runtime.backends import BACKENDS, HINTED, OpenVINOGraph, SplitImageGraph, openvino_supports
from ceir_onnx.runtime.providers import check_active, check_single_onnxruntime, onnxruntime_module, resolve_providers
from ceir_onnx.runtime.tokenizer import ClipTokenizer
from ceir_onnx.variants import cpu_safe_level
from ceir_sdk.atomic import sha256_file
from ceir_sdk.errors import BadInputError, IncompatibleFileError


class Sessions:
    """Sessions of a bundle's graphs, created with one set of options and providers."""

    def __init__(self, root: Path, manifest: dict[str, Any], *, precision: str,
                 providers: str | Sequence[str] | None, threads: int | None, spinning: bool, verify: bool,
                 backend: str = "onnxruntime") -> None:
        self.root, self.manifest, self._verify = root, manifest, verify
        if backend not in BACKENDS:
            raise BadInputError(f"backend must be one of {', '.join(BACKENDS)} (or 'auto' for Runtime); "
                                f"got {backend!r}")
        self.backend, self.threads = backend, threads
        self._text: Any = None
        self._graphs: dict[str, Any] = {}
        self._tokenizer: ClipTokenizer | None = None
        if backend == "openvino":
            self._init_openvino(precision, providers, spinning)
            return
        ort = onnxruntime_module()
        check_single_onnxruntime()
        requested, explicit = resolve_providers(providers)
        variants = manifest["graphs"]["image"]["variants"]
        on_gpu_build = any(p in ort.get_available_providers() for p in requested[:-1])
        if precision == "auto":
            precision = "fp16" if on_gpu_build and "fp16" in variants else "fp32"
        if precision not in variants:
            raise BadInputError(
                f"this bundle has no {precision!r} image graph for onnxruntime (it has {', '.join(variants)}); "
                + ("bf16 runs on the OpenVINO backend: backend='openvino' (or 'auto')" if precision == "bf16"
                   else f"re-export with --{precision} or choose one of those"))
        self.precision = precision
        self.options = ort.SessionOptions()
        self.options.log_severity_level = 3
        if threads:
            self.options.intra_op_num_threads = int(threads)
            self.options.inter_op_num_threads = 1
        # Idle intra-op threads sleep rather than busy-wait (onnxruntime's default): at batch
        # sizes worth running, ops are long and waking costs little, while spinning takes the
        # CPU that decode threads and other processes need (docs/deploy.md, Speed).
        self.spinning = spinning
        self.options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self._requested, self._explicit = requested, explicit
        self.image: Any = self._open(variants[precision]["file"], checked=True)
        self.providers: list[str] = list(self.image.get_providers())

    def _init_openvino(self, precision: str, providers: str | Sequence[str] | None, spinning: bool) -> None:
        """OpenVINO on the CPU: the fp32 image graph as it is; bf16/fp16 as the fp32 graph's
        backbone at that precision followed by the fp32 head graph; int8 as the static int8
        graph's backbone and the fp32 head where the bundle has them (else the dynamic graph)."""
        if providers not in (None, "auto", "cpu", "CPUExecutionProvider", ["cpu"], ["CPUExecutionProvider"]):
            raise BadInputError(
                f"the OpenVINO backend runs on the CPU; providers {providers!r} are onnxruntime's: leave "
                "providers out, or use backend='onnxruntime' for GPU providers")
        variants = self.manifest["graphs"]["image"]["variants"]
        if precision == "auto":
            precision = "fp32"
        if precision not in ("fp32", "int8", *HINTED):
            raise BadInputError(f"precision must be fp32, bf16, int8 or fp16; got {precision!r}")
        if precision == "int8" and "int8" not in variants:
            raise BadInputError(
                f"this bundle has no 'int8' image graph (it has {', '.join(variants)}); re-export with --int8 "
                "or choose another precision")
        if not openvino_supports(precision):
            from ceir_onnx.runtime.backends import openvino_capabilities

            raise BadInputError(
                f"OpenVINO cannot run {precision} on this CPU (it computes {', '.join(openvino_capabilities())}); "
                "use fp32 or int8, or precision='auto'")
        if precision in HINTED and "head" not in self.manifest["graphs"]:
            raise BadInputError(
                f"{precision} keeps the concept head in fp32 through the bundle's head graph, which this bundle "
                "(exported by an older ceir-onnx) lacks: re-export it with `ceir export onnx MODEL_DIR OUT_DIR`")
        self.precision, self.spinning = precision, spinning  # OpenVINO's threads do not spin-wait
        static = variants.get("int8", {}).get("static") if precision == "int8" else None
        if precision in HINTED:
            backbone = OpenVINOGraph(self.root / variants["fp32"]["file"], hint=HINTED[precision],
                                     threads=self.threads, outputs=("image_features",))
            self.image = SplitImageGraph(backbone, self.graph("head", f"the {precision} image path"))
        elif static:  # written only by exporters that also write the head graph
            # The static int8 graph (ceir_onnx.variants.quantize_int8_static): its int8 products
            # are fixed by the graph; the float ops between them run in bf16 where the CPU has
            # bf16 units (faster, and the concept head stays in fp32 behind the features).
            hint = "bf16" if openvino_supports("bf16") else "f32"
            backbone = OpenVINOGraph(self.root / static["file"], hint=hint, threads=self.threads,
                                     outputs=("image_features",), label=f"static int8, float ops {hint}")
            self.image = SplitImageGraph(backbone, self.graph("head", "the int8 image path"))
        else:
            self.image = OpenVINOGraph(self.root / variants[precision]["file"], threads=self.threads)
        self.providers = list(self.image.get_providers())

    def check_unchanged(self, file: str) -> Path:
        """A file opened after load must still be the one the manifest described at load.

        Graphs and the tokenizer are opened on first use; a bundle re-exported in place since
        then would otherwise mix another model's text graph with this one's image graph.
        """
        path = self.root / file
        if not path.is_file():
            raise IncompatibleFileError(
                f"{path} is gone: the bundle at {self.root} was moved, deleted or replaced after this runtime "
                "loaded it; load it again"
            )
        expected = self.manifest.get("files", {}).get(file, {}).get("sha256")
        if self._verify and expected is not None and sha256_file(path) != expected:
            raise IncompatibleFileError(
                f"{path} changed after this runtime loaded the bundle (its checksum no longer matches the "
                "manifest read at load; the bundle was re-exported or altered in place); load it again"
            )
        return path

    def _open(self, file: str, *, checked: bool = False) -> Any:
        if self.backend == "openvino":  # graphs other than the image graph always run in fp32
            return OpenVINOGraph(self.root / file if checked else self.check_unchanged(file), threads=self.threads)
        ort = onnxruntime_module()

        available = ort.get_available_providers()
        usable = [p for p in self._requested if p in available]
        self.options.graph_optimization_level = cpu_safe_level(self.precision if "image" in file else "fp32", usable)
        path = self.root / file if checked else self.check_unchanged(file)
        try:
            session = ort.InferenceSession(str(path), self.options, providers=usable)
        except Exception as exc:  # onnxruntime raises its own types; name the file and the way out
            raise IncompatibleFileError(
                f"onnxruntime {ort.__version__} cannot load {self.root / file}: {exc}; "
                "re-export the bundle with this version or upgrade onnxruntime"
            ) from exc
        check_active(self._requested, session.get_providers(), self._explicit)
        return session

    @property
    def text(self) -> Any:
        if self._text is None:
            graphs = self.manifest["graphs"]
            if "text" not in graphs:
                raise BadInputError("this bundle was exported without a text graph; text queries need one")
            self._text = self._open(graphs["text"]["variants"]["fp32"]["file"])
        return self._text

    def graph(self, name: str, purpose: str) -> Any:
        """The fp32 session of an optional graph, created on first use. Bundles written before
        the graph existed still load; only the method that needs it fails, saying why."""
        if name not in self._graphs:
            graphs = self.manifest["graphs"]
            if name not in graphs:
                raise BadInputError(
                    f"this bundle ({self.root}) has no {name!r} graph, needed for {purpose}; it was "
                    "exported by an older ceir-onnx: re-export it with `ceir export onnx MODEL_DIR OUT_DIR`"
                )
            self._graphs[name] = self._open(graphs[name]["variants"]["fp32"]["file"])
        return self._graphs[name]

    @property
    def tokenizer(self) -> ClipTokenizer:
        if self._tokenizer is None:
            info = self.manifest.get("tokenizer")
            if not info:
                raise BadInputError(
                    f"this bundle ({self.root}) is image-only: its backbone gave no text module with a CLIP BPE "
                    "tokenizer at export, so it cannot embed text. Search by concepts or images instead, or "
                    "export from a backbone that has one")
            self._tokenizer = ClipTokenizer(self.check_unchanged(info["vocab_file"]), info["context_length"])
        return self._tokenizer
