"""The runtime of an exported CEIR bundle: images, texts and concept vectors with onnxruntime or
OpenVINO (no torch, open_clip or training code).

Sessions (backend, providers, precision, which graph) live in :mod:`~ceir_onnx.runtime.sessions`,
how an "auto" backend or precision is chosen in :mod:`~ceir_onnx.runtime.tune`, the
image path in :mod:`~ceir_onnx.runtime.images`, texts and concept vectors in
:mod:`~ceir_onnx.runtime.text`; :class:`Runtime` puts them together behind one API, which is
also the Encoder a ConceptIndex uses (``encode_images``, ``encode_texts``, ``concept_vector``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceir_onnx.bundle import read_manifest
from ceir_onnx.runtime.images import Embeddings, concat, pixel_batches, run_batch
from ceir_onnx.runtime.preprocess import PreprocessConfig, iter_images, preprocess_one
from ceir_onnx.runtime.search import ExactIndex
from ceir_onnx.runtime.sessions import Sessions
from ceir_onnx.runtime.text import TextPart
from ceir_onnx.runtime.tokenizer import ClipTokenizer
from ceir_sdk.concepts.generality import presence_mask, presence_requirements
from ceir_sdk.data.images import LoadOptions, NoUsableImagesError
from ceir_sdk.errors import BadInputError

_log = logging.getLogger("ceir_onnx.runtime")

OUTPUTS = ("latent", "concepts", "both", "all")
SPACES = {"latent": "latent", "concepts": "concepts", "clip": "image_features"}


@dataclass
class Explanation:
    """The concepts an image shows most (``top``) and least (``absent``), by z-score, and all the
    concepts it shows (``present``: at or above the model's presence threshold, strongest first)."""

    top: list[tuple[str, float]]
    absent: list[tuple[str, float]]
    present: list[tuple[str, float]] = field(default_factory=list)


class Runtime:
    """A loaded bundle: preprocessing, tokenizer and the sessions of one backend.

    ``backend``: "onnxruntime", "openvino" (``pip install 'ceir-onnx[openvino]'``) or "auto";
    ``precision``: "fp32", "bf16" (OpenVINO), "int8", "fp16" or "auto". What is left "auto" comes
    from the tuning recorded for this bundle on this machine (`ceir tune BUNDLE`), measured now
    when ``tune=True`` and none is recorded, else onnxruntime at fp32 (fp16 on a GPU build).
    :meth:`describe` says what runs and why.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str],
        *,
        precision: str = "auto",
        backend: str = "auto",
        tune: bool = False,
        providers: str | Sequence[str] | None = "auto",
        threads: int | None = None,
        batch_size: int = 32,
        decode_workers: int | None = None,
        verify: bool = True,
        on_error: str = "fail",
        spinning: bool = False,
        max_pixels: int | None = None,
    ) -> None:
        from safetensors.numpy import load_file

        # Absolute, so graphs opened on first use are found after a server changes directory.
        self.root = Path(bundle_dir).resolve()
        self.manifest = read_manifest(self.root, verify=verify)
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
        from ceir_onnx.runtime.tune import resolve

        self.backend, precision, self.choice = resolve(self.root, self.manifest, backend=backend,
                                                       precision=precision, providers=providers, threads=threads,
                                                       tune_now=tune)
        self.sessions = Sessions(self.root, self.manifest, precision=precision, providers=providers,
                                 threads=threads, spinning=spinning, verify=verify, backend=self.backend)
        self.threads = threads
        self.precision = self.sessions.precision
        self.spinning = spinning
        self.providers: list[str] = self.sessions.providers
        self.text = TextPart(self.sessions, self.concepts, self.concept_text_embeddings)

    def describe(self) -> dict[str, Any]:
        """What runs and why: backend, precision, device, and how they were chosen (given, the
        tuning recorded for this machine with its figures, measured now, or the default)."""
        figures = self.choice.get("figures")
        summary = f"{self.backend} {self.precision} on {', '.join(self.providers)}, {self.choice['chosen_by']}"
        if figures:
            summary += (f": {figures['images_per_s']:.1f} images/s, latent min cosine to fp32 "
                        f"{figures['latent_min_cosine']:.6f}")
        elif self.choice.get("note"):
            summary += f" ({self.choice['note']})"
        return {"bundle": str(self.root), "backend": self.backend, "precision": self.precision,
                "providers": list(self.providers), "threads": self.threads, **self.choice, "summary": summary}

    # -- sessions (kept as attributes of the runtime for existing callers) -----------------
    @property
    def image_session(self) -> Any:
        return self.sessions.image

    @property
    def text_session(self) -> Any:
        return self.sessions.text

    def _graph_session(self, name: str, purpose: str) -> Any:
        return self.sessions.graph(name, purpose)

    @property
    def tokenizer(self) -> ClipTokenizer:
        return self.sessions.tokenizer

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

    def run_pixels(self, pixels: np.ndarray) -> Embeddings:
        """Run the image graph on preprocessed pixels (N, 3, S, S), in batches."""
        pixels = np.asarray(pixels, dtype=np.float32)
        size = self.preprocess_config.image_size
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
            raise BadInputError(f"pixels must be (N, 3, {size}, {size}) float32; got {pixels.shape}")
        return concat([run_batch(self.sessions.image, pixels[i : i + self.batch_size])
                       for i in range(0, len(pixels), self.batch_size)])

    def embed_batches(self, images: Any, *, on_error: str | None = None, max_pixels: int | None = None,
                      progress: bool = False) -> Iterator[Embeddings]:
        """Embeddings a batch at a time, as they are computed (a generator, like fastembed's embed):
        a million files never become one array. Each batch's ``kept`` holds the input position of
        each row; its ``skipped``, the images skipped since the previous batch (``on_error="skip"``).
        """
        from tqdm.auto import tqdm

        on_error = self.on_error if on_error is None else on_error
        if on_error not in ("fail", "skip"):
            raise BadInputError(f"on_error must be 'fail' or 'skip'; got {on_error!r}")
        items = iter_images(images)
        options = self.load_options if max_pixels is None else LoadOptions(max_pixels=int(max_pixels))
        skipped: list[tuple[int, str]] = []
        reported = 0
        with tqdm(total=len(items), desc="embed", unit="img", disable=not progress) as bar:
            for positions, pixels in pixel_batches(items, self.preprocess_config, batch_size=self.batch_size,
                                                   workers=self.decode_workers, on_error=on_error, options=options,
                                                   skipped=skipped):
                batch = run_batch(self.sessions.image, pixels)
                batch.kept, batch.skipped, reported = positions, skipped[reported:], len(skipped)
                bar.update(len(pixels))
                yield batch
        if len(skipped) > reported:  # unreadable images after the last batch: one row-less batch says so
            empty = np.zeros((0, 0), np.float32)
            yield Embeddings(latent=empty, concepts=empty, image_features=empty, skipped=skipped[reported:])

    def embed_all(self, images: Any, *, progress: bool = False, on_error: str | None = None,
                  max_pixels: int | None = None) -> Embeddings:
        """All three outputs for images given as paths, a folder, PIL images or arrays.

        ``on_error`` and ``max_pixels`` override the runtime's for this call; the result's ``kept``
        and ``skipped`` say which inputs its rows are (safe to use from several threads at once).
        Skipped images are logged (a warning on ``ceir_onnx.runtime``).
        """
        result = self._embed_all(images, progress=progress, on_error=on_error, max_pixels=max_pixels)
        if result.skipped:
            _log.warning("embedded %d of %d images; skipped %d (e.g. %s)", len(result.kept),
                         len(result.kept) + len(result.skipped), len(result.skipped), result.skipped[0][1])
        return result

    def _embed_all(self, images: Any, *, progress: bool, on_error: str | None,
                   max_pixels: int | None) -> Embeddings:
        items = iter_images(images)
        outs: list[Embeddings] = []
        kept: list[int] = []
        skipped: list[tuple[int, str]] = []
        self._calls.kept, self._calls.skipped = kept, skipped
        for batch in self.embed_batches(items, on_error=on_error, max_pixels=max_pixels, progress=progress):
            skipped.extend(batch.skipped)
            if len(batch.kept):
                outs.append(batch)
                kept.extend(batch.kept)
        if not outs and skipped:
            raise NoUsableImagesError(f"none of the {len(items)} images could be read; the first problem: "
                                f"{skipped[0][1]}")
        result = concat(outs)
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

    # -- the Encoder contract (ceir_sdk.index.Encoder), so an index can use a runtime as it is ----
    def encode_images(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """(z-scored concept activations (N, C), latents (N, L)) of images."""
        emb = self.embed_all(images)
        return emb.concepts, emb.latent

    def encode_image_files(self, paths: Sequence[str], *, on_error: str = "fail", max_pixels: int | None = None,
                           ) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[int, str]]]:
        """(activations, latents, input position of each row, (position, why) of each skipped file).
        Skips are returned, not logged: the caller reports them."""
        emb = self._embed_all(list(paths), progress=True, on_error=on_error, max_pixels=max_pixels)
        return emb.concepts, emb.latent, list(emb.kept), list(emb.skipped)

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

    # -- text (ceir_onnx.runtime.text) ---------------------------------------------------
    def embed_texts(self, texts: str | Sequence[str]) -> np.ndarray:
        """Unnormalised text features (N, D) in the backbone's space."""
        return self.text.embed_texts(texts, self.batch_size)

    def encode_features(self, features: np.ndarray, *, output: str = "both") -> Any:
        """Backbone features (N, D) through the concept head, like ``CEIRModel.encode_features``:
        "latent" (N, L), "concepts" (N, C) or "both" (concepts, latent)."""
        return self.text.encode_features(features, output=output)

    def encode_texts(self, texts: str | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(concept z-scores (N, C), latents (N, L)) of texts, as the torch model computes them."""
        return self.text.encode_texts(texts, self.batch_size)

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        """Latents (N, L) of z-scored concept activations (N, C) (or one row (C,)): the latent
        model's encoder alone, used to search with edited concepts."""
        return self.text.concept_vector(activations)

    def _require_texts_in_image_space(self, what: str) -> None:
        if not self.text.texts_in_image_space:
            raise BadInputError(
                f"{what} compares text features with the backbone's image features, but this bundle's text "
                "graph is its concept model's text tower (another space); use encode_texts (concepts and "
                "latents) and search an index in latent or concept space instead")

    def concept_similarity(self, images: Any, texts: Sequence[str]) -> np.ndarray:
        """Open-world concepts: cosine of each image to each text (N, len(texts))."""
        self._require_texts_in_image_space("concept_similarity")
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
        self._require_texts_in_image_space("search_text")
        return index.search(self.embed_texts(text), k)
