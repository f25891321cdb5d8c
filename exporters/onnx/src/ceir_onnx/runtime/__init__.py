"""Run an exported CEIR bundle with onnxruntime: no torch, open_clip or training code.

    from ceir_onnx.runtime import Runtime
    rt = Runtime("bundle/", providers="auto", precision="fp32", threads=4, batch_size=32)
    latents = rt.embed("photos/")                    # (N, L) latent means
    concepts, latents = rt.encode_texts(["a striped cat"])   # text through the concept head
    latents = rt.concept_vector(edited_concepts)     # z-scored concepts (N, C) -> latents
    for e in rt.explain("photos/cat.jpg"): print(e.top)
    index = rt.index("photos/")                      # exact search over latents
    scores, rows = rt.search(index, "query.jpg", k=5)
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceir_onnx.bundle import read_manifest, sha256_file
from ceir_onnx.runtime.preprocess import PreprocessConfig, iter_images, preprocess_one
from ceir_onnx.runtime.providers import (
    ProviderWarning,
    check_active,
    check_single_onnxruntime,
    resolve_providers,
)
from ceir_onnx.runtime.search import ExactIndex
from ceir_onnx.runtime.tokenizer import ClipTokenizer
from ceir_onnx.variants import cpu_safe_level
from ceir_sdk.concepts.generality import presence_mask, presence_requirements
from ceir_sdk.concepts.text_scale import standardise_text_activations, text_statistics
from ceir_sdk.data.images import LoadOptions
from ceir_sdk.errors import BadInputError, IncompatibleFileError

_log = logging.getLogger("ceir_onnx.runtime")

__all__ = ["Embeddings", "ExactIndex", "Explanation", "ProviderWarning", "Runtime"]

OUTPUTS = ("latent", "concepts", "both", "all")
#: rows per run of the small head and latent graphs (they are cheap; this bounds memory)
SMALL_GRAPH_BATCH = 8192
SPACES = {"latent": "latent", "concepts": "concepts", "clip": "image_features"}


@dataclass
class Embeddings:
    latent: np.ndarray  # (N, L) posterior means
    concepts: np.ndarray  # (N, C) z-scored concept activations
    image_features: np.ndarray  # (N, D) backbone features (CLIP space), unnormalised
    # With on_error="skip": the input position of each row, and the (position, why) of each skipped image.
    kept: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Explanation:
    """The concepts an image shows most (``top``) and least (``absent``), by z-score, and all the
    concepts it shows (``present``: at or above the model's presence threshold, strongest first)."""

    top: list[tuple[str, float]]
    absent: list[tuple[str, float]]
    present: list[tuple[str, float]] = field(default_factory=list)


class Runtime:
    """A loaded bundle: preprocessing, tokenizer and onnxruntime sessions."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str],
        *,
        precision: str = "auto",
        providers: str | Sequence[str] | None = "auto",
        threads: int | None = None,
        batch_size: int = 32,
        decode_workers: int | None = None,
        verify: bool = True,
        on_error: str = "fail",
        spinning: bool = False,
        max_pixels: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from safetensors.numpy import load_file

        # Absolute, so graphs opened on first use are found after a server changes directory.
        self.root = Path(bundle_dir).resolve()
        self.manifest = read_manifest(self.root, verify=verify)
        self._verify = verify
        if batch_size < 1:
            raise BadInputError(f"batch_size must be >= 1; got {batch_size}")
        self.batch_size = batch_size
        self.decode_workers = decode_workers or min(4, os.cpu_count() or 1)
        if on_error not in ("fail", "skip"):
            raise BadInputError(f"on_error must be 'fail' or 'skip'; got {on_error!r}")
        # "skip": unreadable images are left out; embed_all's result (and, per thread, last_kept /
        # last_skipped) maps output rows back to input positions and lists what was skipped.
        self.on_error = on_error
        # Images larger than this are refused before decoding (a decompression-bomb guard).
        self.load_options = LoadOptions() if max_pixels is None else LoadOptions(max_pixels=int(max_pixels))
        self._calls = threading.local()  # one server thread's call must not see another's lists
        self.preprocess_config = PreprocessConfig.from_dict(self.manifest["preprocess"])
        self.concepts: list[str] = json.loads((self.root / self.manifest["concepts_file"]).read_text("utf-8"))
        # The fitted model's per-concept presence thresholds; bundles without them: z > 0.
        saved = self.manifest.get("presence_thresholds")
        self.presence_thresholds: np.ndarray | None = None if saved is None else np.array(
            [np.inf if t is None else float(t) for t in saved], dtype=np.float32)
        # Descriptions need the concepts among their words (bundles from before the rule: on).
        self.presence_requirements: list[list[int]] | None = (
            presence_requirements(self.concepts) if self.manifest.get("presence_by_parts", True) else None)
        self.concept_text_embeddings = load_file(str(self.root / self.manifest["concept_embeddings_file"]))[
            "concept_text_embeddings"
        ]

        check_single_onnxruntime()
        requested, explicit = resolve_providers(providers)
        variants = self.manifest["graphs"]["image"]["variants"]
        on_gpu_build = any(p in ort.get_available_providers() for p in requested[:-1])
        if precision == "auto":
            precision = "fp16" if on_gpu_build and "fp16" in variants else "fp32"
        if precision not in variants:
            raise BadInputError(
                f"this bundle has no {precision!r} image graph (it has {', '.join(variants)}); "
                f"re-export with --{precision} or choose one of those"
            )
        self.precision = precision

        self._options = ort.SessionOptions()
        self._options.log_severity_level = 3
        if threads:
            self._options.intra_op_num_threads = int(threads)
            self._options.inter_op_num_threads = 1
        # Idle intra-op threads sleep rather than busy-wait (onnxruntime's default): at batch
        # sizes worth running, ops are long and waking costs little, while spinning takes the
        # CPU that decode threads and other processes need (docs/deploy.md, Speed).
        self.spinning = spinning
        self._options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self._requested = requested
        self._explicit = explicit
        self.image_session = self._session(variants[precision]["file"], checked=True)
        self.providers: list[str] = list(self.image_session.get_providers())
        self._text_session: Any = None
        self._sessions: dict[str, Any] = {}
        self._tokenizer: ClipTokenizer | None = None
        self._text_stats: tuple[np.ndarray, np.ndarray] | None = None

    # -- sessions --------------------------------------------------------------------
    def _check_unchanged(self, file: str) -> Path:
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

    def _session(self, file: str, *, checked: bool = False) -> Any:
        import onnxruntime as ort

        available = ort.get_available_providers()
        usable = [p for p in self._requested if p in available]
        self._options.graph_optimization_level = cpu_safe_level(self.precision if "image" in file else "fp32", usable)
        path = self.root / file if checked else self._check_unchanged(file)
        try:
            session = ort.InferenceSession(str(path), self._options, providers=usable)
        except Exception as exc:  # onnxruntime raises its own types; name the file and the way out
            raise IncompatibleFileError(
                f"onnxruntime {ort.__version__} cannot load {self.root / file}: {exc}; "
                "re-export the bundle with this version or upgrade onnxruntime"
            ) from exc
        check_active(self._requested, session.get_providers(), self._explicit)
        return session

    @property
    def text_session(self) -> Any:
        if self._text_session is None:
            graphs = self.manifest["graphs"]
            if "text" not in graphs:
                raise BadInputError("this bundle was exported without a text graph; text queries need one")
            self._text_session = self._session(graphs["text"]["variants"]["fp32"]["file"])
        return self._text_session

    def _graph_session(self, name: str, purpose: str) -> Any:
        """The fp32 session of an optional graph, created on first use. Bundles written before
        the graph existed still load; only the method that needs it fails, saying why."""
        if name not in self._sessions:
            graphs = self.manifest["graphs"]
            if name not in graphs:
                raise BadInputError(
                    f"this bundle ({self.root}) has no {name!r} graph, needed for {purpose}; it was "
                    "exported by an older ceir-onnx: re-export it with `ceir export onnx MODEL_DIR OUT_DIR`"
                )
            self._sessions[name] = self._session(graphs[name]["variants"]["fp32"]["file"])
        return self._sessions[name]

    @property
    def tokenizer(self) -> ClipTokenizer:
        if self._tokenizer is None:
            info = self.manifest.get("tokenizer")
            if not info:
                raise BadInputError(
                    f"this bundle ({self.root}) is image-only: its backbone gave no text module with a CLIP BPE "
                    "tokenizer at export, so it cannot embed text. Search by concepts or images instead, or "
                    "export from a backbone that has one")
            self._tokenizer = ClipTokenizer(self._check_unchanged(info["vocab_file"]), info["context_length"])
        return self._tokenizer

    # -- images ----------------------------------------------------------------------
    def preprocess(self, images: Any) -> np.ndarray:
        """Images in any accepted form -> float32 pixels (N, 3, S, S) for the image graph."""
        return np.stack([preprocess_one(im, self.preprocess_config, self.load_options) for im in iter_images(images)])

    @property
    def last_kept(self) -> list[int]:
        """Input position of each output row of this thread's last embed call."""
        return list(getattr(self._calls, "kept", []))

    @property
    def last_skipped(self) -> list[tuple[int, str]]:
        """(input position, why) of each image this thread's last embed call skipped."""
        return list(getattr(self._calls, "skipped", []))

    def _prepare(self, index: int, item: Any, on_error: str,
                 options: LoadOptions) -> tuple[int, np.ndarray | None, str]:
        try:
            return index, preprocess_one(item, self.preprocess_config, options), ""
        except BadInputError as exc:
            if on_error == "fail":
                raise
            return index, None, str(exc)

    def _pixel_batches(
        self, items: Sequence[Any], skipped: list[tuple[int, str]], on_error: str, options: LoadOptions,
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Decode and preprocess in threads, a bounded window ahead of inference; yields
        (input positions, pixels) and lists unreadable images in ``skipped``."""
        window = 2 * self.batch_size
        with ThreadPoolExecutor(self.decode_workers) as pool:
            pending: deque[Future[tuple[int, np.ndarray | None, str]]] = deque()
            it = iter(enumerate(items))
            for index, item in it:
                pending.append(pool.submit(self._prepare, index, item, on_error, options))
                if len(pending) >= window:
                    break
            positions: list[int] = []
            batch: list[np.ndarray] = []
            while pending:
                index, pixels, problem = pending.popleft().result()
                if pixels is None:
                    skipped.append((index, problem))
                else:
                    positions.append(index)
                    batch.append(pixels)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._prepare, *nxt, on_error, options))
                if len(batch) == self.batch_size:
                    yield positions, np.stack(batch)
                    positions, batch = [], []
            if batch:
                yield positions, np.stack(batch)

    def run_pixels(self, pixels: np.ndarray) -> Embeddings:
        """Run the image graph on preprocessed pixels (N, 3, S, S), in batches."""
        pixels = np.asarray(pixels, dtype=np.float32)
        size = self.preprocess_config.image_size
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
            raise BadInputError(f"pixels must be (N, 3, {size}, {size}) float32; got {pixels.shape}")
        outs = [self._run_batch(pixels[i : i + self.batch_size]) for i in range(0, len(pixels), self.batch_size)]
        return _concat(outs)

    def _run_batch(self, pixels: np.ndarray) -> Embeddings:
        concepts, latent, features = self.image_session.run(None, {"pixels": pixels})
        return Embeddings(latent=latent, concepts=concepts, image_features=features)

    def embed_all(self, images: Any, *, progress: bool = False, on_error: str | None = None,
                  max_pixels: int | None = None) -> Embeddings:
        """All three outputs for images given as paths, a folder, PIL images or arrays.

        ``on_error`` and ``max_pixels`` override the runtime's for this call; the result's ``kept``
        and ``skipped`` say which inputs its rows are (safe to use from several threads at once).
        """
        from tqdm.auto import tqdm

        on_error = self.on_error if on_error is None else on_error
        if on_error not in ("fail", "skip"):
            raise BadInputError(f"on_error must be 'fail' or 'skip'; got {on_error!r}")
        items = iter_images(images)
        outs: list[Embeddings] = []
        kept: list[int] = []
        skipped: list[tuple[int, str]] = []
        self._calls.kept, self._calls.skipped = kept, skipped
        with tqdm(total=len(items), desc="embed", unit="img", disable=not progress) as bar:
            options = self.load_options if max_pixels is None else LoadOptions(max_pixels=int(max_pixels))
            for positions, pixels in self._pixel_batches(items, skipped, on_error, options):
                outs.append(self._run_batch(pixels))
                kept.extend(positions)
                bar.update(len(pixels))
        if skipped:
            _log.warning("embedded %d of %d images; skipped %d (e.g. %s)", len(kept), len(items),
                         len(skipped), skipped[0][1])
        if not outs and skipped:
            raise BadInputError(f"none of the {len(items)} images could be read; the first problem: "
                                f"{skipped[0][1]}")
        result = _concat(outs)
        result.kept, result.skipped = kept, skipped
        return result

    def embed(self, images: Any, *, output: str = "latent", progress: bool = False,
              on_error: str | None = None) -> Any:
        """``output``: "latent" (N, L), "concepts" (N, C), "both" (concepts, latent) or "all"."""
        if output not in OUTPUTS:
            raise BadInputError(f"output must be one of {', '.join(OUTPUTS)}; got {output!r}")
        emb = self.embed_all(images, progress=progress, on_error=on_error)
        if output == "latent":
            return emb.latent
        if output == "concepts":
            return emb.concepts
        if output == "both":
            return emb.concepts, emb.latent
        return emb

    def explain(self, images: Any = None, *, concepts: np.ndarray | None = None, top_k: int = 5) -> list[Explanation]:
        """Name the strongest and weakest concepts of each image (or of given activations)."""
        acts = np.asarray(concepts) if concepts is not None else self.embed(images, output="concepts")
        acts = acts[None, :] if acts.ndim == 1 else acts
        if acts.shape[1] != len(self.concepts):
            raise BadInputError(
                f"activations have {acts.shape[1]} columns; the bundle has {len(self.concepts)} concepts"
            )
        result = []
        # one pass over the whole batch: the parts rule loops over concepts, not images
        shown_rows = presence_mask(acts, self.presence_thresholds, self.presence_requirements)
        for row, shown in zip(acts, shown_rows, strict=True):
            order = np.argsort(-row, kind="stable")
            result.append(
                Explanation(
                    top=[(self.concepts[i], float(row[i])) for i in order[:top_k]],
                    absent=[(f"NOT {self.concepts[i]}", float(row[i])) for i in order[::-1][:top_k]],
                    present=[(self.concepts[i], float(row[i])) for i in order if shown[i]],
                )
            )
        return result

    # -- text ------------------------------------------------------------------------
    def embed_texts(self, texts: str | Sequence[str]) -> np.ndarray:
        """Unnormalised text features (N, D) in the backbone's space."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise BadInputError("give one or more texts (strings); got " + (repr(texts[:3]) if texts else "none"))
        tokens = self.tokenizer(texts)
        out = [self.text_session.run(None, {"tokens": tokens[i : i + self.batch_size]})[0]
               for i in range(0, len(tokens), self.batch_size)]
        return np.concatenate(out).astype(np.float32)

    def encode_features(self, features: np.ndarray, *, output: str = "both") -> Any:
        """Backbone features (N, D) through the concept head, like ``CEIRModel.encode_features``:
        "latent" (N, L), "concepts" (N, C) or "both" (concepts, latent)."""
        if output not in ("latent", "concepts", "both"):
            raise BadInputError(f"output must be 'latent', 'concepts' or 'both'; got {output!r}")
        x = np.ascontiguousarray(features, dtype=np.float32)
        dim = int(self.manifest["embed_dim"])
        if x.ndim != 2 or x.shape[1] != dim or len(x) == 0:
            raise BadInputError(f"features must be a non-empty (N, {dim}) float array; got shape {x.shape}")
        session = self._graph_session("head", "text queries and features")
        outs = [session.run(None, {"features": x[i : i + SMALL_GRAPH_BATCH]})
                for i in range(0, len(x), SMALL_GRAPH_BATCH)]
        concepts = np.concatenate([o[0] for o in outs]).astype(np.float32)
        latent = np.concatenate([o[1] for o in outs]).astype(np.float32)
        if output == "latent":
            return latent
        if output == "concepts":
            return concepts
        return concepts, latent

    def encode_texts(self, texts: str | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(concept z-scores (N, C), latents (N, L)) of texts, as the torch model computes them:
        the text graph, the concept head, re-standardisation with text statistics (CLIP's
        modality gap, see ``ceir_sdk.concepts.text_scale``), then the latent graph."""
        raw = self.encode_features(self.embed_texts(texts), output="concepts")
        concepts = standardise_text_activations(raw, *self._text_statistics())
        return concepts, self.concept_vector(concepts)

    def _text_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        if self._text_stats is None:
            reference = self.encode_features(self.concept_text_embeddings, output="concepts")
            self._text_stats = text_statistics(reference)
        return self._text_stats

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        """Latents (N, L) of z-scored concept activations (N, C) (or one row (C,)): the latent
        model's encoder alone, used to search with edited concepts."""
        a = np.asarray(activations, dtype=np.float32)
        a = a[None, :] if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] != len(self.concepts) or len(a) == 0:
            raise BadInputError(
                f"activations must be (N, {len(self.concepts)}) for this bundle's concepts; got shape {a.shape}"
            )
        if not np.isfinite(a).all():
            raise BadInputError("activations contain NaN or infinite values")
        a = np.ascontiguousarray(a)
        session = self._graph_session("latent", "concept edits (concepts to latent)")
        outs = [session.run(None, {"concepts": a[i : i + SMALL_GRAPH_BATCH]})[0]
                for i in range(0, len(a), SMALL_GRAPH_BATCH)]
        return np.concatenate(outs).astype(np.float32)

    def concept_similarity(self, images: Any, texts: Sequence[str]) -> np.ndarray:
        """Open-world concepts: cosine of each image to each text (N, len(texts))."""
        feats = self.embed(images, output="all").image_features
        text = self.embed_texts(texts)
        feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        text = text / np.linalg.norm(text, axis=1, keepdims=True)
        return feats @ text.T

    # -- search ----------------------------------------------------------------------
    def index(self, images: Any, *, space: str = "latent", metric: str = "cosine") -> ExactIndex:
        """Embed images and put them in an exact index; ids are the paths when given."""
        if space not in SPACES:
            raise BadInputError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
        items = iter_images(images)
        emb = self.embed_all(items)
        ids = [str(i) if isinstance(i, (str, os.PathLike)) else n for n, i in enumerate(items)]
        return ExactIndex(metric=metric).add(getattr(emb, SPACES[space]), ids)

    def search(self, index: Any, query: Any, *, k: int = 10, space: str = "latent") -> tuple[np.ndarray, np.ndarray]:
        """Nearest neighbours of query images, or of vectors (2-D float array), in ``index``.

        ``index`` is an :class:`ExactIndex` or anything with ``search(vectors, k)``.
        """
        if isinstance(query, np.ndarray) and query.dtype.kind == "f":
            vectors = query
        else:
            vectors = getattr(self.embed(query, output="all"), SPACES[space])
        return index.search(vectors, k)

    def search_text(self, index: Any, text: str | Sequence[str], *, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Text query against an index built with ``space="clip"``."""
        return index.search(self.embed_texts(text), k)


def _concat(parts: list[Embeddings]) -> Embeddings:
    if not parts:
        raise BadInputError("no images were given")
    return Embeddings(
        latent=np.concatenate([p.latent for p in parts]),
        concepts=np.concatenate([p.concepts for p in parts]),
        image_features=np.concatenate([p.image_features for p in parts]),
    )
