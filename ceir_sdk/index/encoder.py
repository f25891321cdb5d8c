"""The ``Encoder`` protocol: how a ConceptIndex turns images, texts and edited concepts into queries.

Anything with these three methods plugs in: the torch :class:`ceir_sdk.model.CEIRModel`
(through :class:`ModelEncoder`), the torch-free ONNX runtime (through
:class:`RuntimeEncoder`), or plain callables (:class:`FunctionEncoder`). The index itself
never imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ceir_sdk.errors import BadInputError, IncompatibleFileError

Pair = tuple[np.ndarray, np.ndarray]
# (activations, latents, input position of each row, (input position, why) of each skipped image)
Skippable = tuple[np.ndarray, np.ndarray, list[int], list[tuple[int, str]]]


@runtime_checkable
class Encoder(Protocol):
    """Maps queries into an index's two spaces: concept activations (N, C) and latents (N, L)."""

    @property
    def concepts(self) -> Sequence[str]:
        """Concept names, in the order of the activation columns."""
        ...

    def encode_images(self, images: Any) -> Pair:
        """(z-scored concept activations (N, C), latents (N, L)) of images."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> Pair:
        """The same pair for texts: the text embedding sent through the concept head."""
        ...

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        """Latents (N, L) of z-scored concept activations (N, C): the latent encoder alone."""
        ...


class ModelEncoder:
    """Adapter for a fitted :class:`ceir_sdk.model.CEIRModel` (needs torch)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.concepts: list[str] = list(model.concepts)

    def encode_images(self, images: Any) -> Pair:
        z, lat = self.model.encode(images, output="both", progress=False)
        return np.asarray(z, np.float32), np.asarray(lat, np.float32)

    def encode_image_files(self, paths: Sequence[str], *, on_error: str = "fail",
                           max_pixels: int | None = None) -> Skippable:
        """Like encode_images for files, with the data layer's policy for unreadable ones."""
        encode = getattr(self.model.backbone, "encode", None)
        if encode is None:  # a backbone with only the required members: no skip reports
            if on_error != "fail":
                raise BadInputError(f"backbone {self.model.backbone.name!r} cannot skip unreadable images (it has "
                                    "no encode(); see docs/plugins.md); remove them, or leave out --on-error skip")
            z, lat = self.encode_images(list(paths))
            return z, lat, list(range(len(paths))), []
        limit = {} if max_pixels is None else {"max_pixels": max_pixels}
        encoded = encode(list(paths), progress=True, on_error=on_error, **limit)
        position = {path: i for i, path in enumerate(paths)}
        kept = [position[item_id] for item_id in encoded.ids]
        skipped = [(position[s.id], s.problem) for s in encoded.report.skipped]
        z, lat = self.model.encode_features(encoded.features, output="both")
        return np.asarray(z, np.float32), np.asarray(lat, np.float32), kept, skipped

    def encode_texts(self, texts: Sequence[str]) -> Pair:
        z, lat = self.model.encode_texts(list(texts), output="both")
        return np.asarray(z, np.float32), np.asarray(lat, np.float32)

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.latent_model.encode(np.asarray(activations, np.float32)), np.float32)


class RuntimeEncoder:
    """Adapter for the ONNX runtime (``ceir_onnx.runtime.Runtime``); no torch.

    Images go through the bundle's image graph. Texts and edited concepts need graphs a
    bundle may not carry; the runtime's own ``encode_texts`` / ``concept_vector`` are used
    when present, otherwise a clear error says what is missing.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.concepts: list[str] = list(runtime.concepts)

    def encode_images(self, images: Any) -> Pair:
        z, lat = self.runtime.embed(images, output="both")
        return np.asarray(z, np.float32), np.asarray(lat, np.float32)

    def encode_image_files(self, paths: Sequence[str], *, on_error: str = "fail",
                           max_pixels: int | None = None) -> Skippable:
        """Like encode_images for files, with the data layer's policy for unreadable ones."""
        emb = self.runtime.embed_all(list(paths), progress=True, on_error=on_error, max_pixels=max_pixels)
        kept = list(emb.kept) if emb.kept else list(range(len(emb.latent)))
        return (np.asarray(emb.concepts, np.float32), np.asarray(emb.latent, np.float32), kept,
                list(emb.skipped))

    def encode_texts(self, texts: Sequence[str]) -> Pair:
        fn = getattr(self.runtime, "encode_texts", None)
        if fn is None:
            raise BadInputError(
                "this ONNX bundle cannot map text into the latent space (no text-to-concepts graph); "
                "re-export it with a newer ceir-onnx or query with the torch model"
            )
        z, lat = fn(list(texts))
        return np.asarray(z, np.float32), np.asarray(lat, np.float32)

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        fn = getattr(self.runtime, "concept_vector", None)
        if fn is None:
            raise BadInputError(
                "this ONNX bundle has no concepts-to-latent graph, needed for concept edits; "
                "re-export it with a newer ceir-onnx or use the torch model"
            )
        return np.asarray(fn(np.asarray(activations, np.float32)), np.float32)


class FunctionEncoder:
    """An encoder from plain callables; a missing one raises a clear error when needed."""

    def __init__(
        self,
        concepts: Sequence[str],
        *,
        images: Callable[[Any], Pair] | None = None,
        texts: Callable[[Sequence[str]], Pair] | None = None,
        concept_vector: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.concepts: list[str] = list(concepts)
        self._images, self._texts, self._concept_vector = images, texts, concept_vector

    def encode_images(self, images: Any) -> Pair:
        if self._images is None:
            raise BadInputError("this encoder cannot encode images; give FunctionEncoder(images=...)")
        return self._images(images)

    def encode_texts(self, texts: Sequence[str]) -> Pair:
        if self._texts is None:
            raise BadInputError("this encoder cannot encode texts; give FunctionEncoder(texts=...)")
        return self._texts(texts)

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        if self._concept_vector is None:
            raise BadInputError("this encoder cannot map concepts to latents; give FunctionEncoder(concept_vector=...)")
        return self._concept_vector(activations)


def as_encoder(obj: Any) -> Encoder:
    """Wrap a CEIRModel or ONNX Runtime (or pass an Encoder through)."""
    if hasattr(obj, "encode_features") and hasattr(obj, "latent_model"):
        return ModelEncoder(obj)
    if hasattr(obj, "embed") and hasattr(obj, "embed_texts"):
        return RuntimeEncoder(obj)
    if isinstance(obj, Encoder):
        return obj
    raise BadInputError(
        f"{type(obj).__name__} is not an encoder: give a CEIRModel, an ONNX Runtime, or an object with "
        "encode_images, encode_texts and concept_vector"
    )


def encoder_kind(path: str | Path) -> str:
    """'ceir-model' or 'onnx-bundle', read from the directory's JSON."""
    p = Path(path)
    for name, fmt, kind in (("config.json", "ceir-model", "ceir-model"),
                            ("manifest.json", "ceir-onnx-bundle", "onnx-bundle")):
        f = p / name
        if f.is_file():
            try:
                if json.loads(f.read_text(encoding="utf-8")).get("format") == fmt:
                    return kind
            except ValueError:
                continue
    raise IncompatibleFileError(f"{p} is neither a fitted CEIR model directory nor an ONNX bundle")


def model_fingerprint(path: str | Path) -> str | None:
    """What identifies a fitted model's numbers: the weights' checksum of a model directory, the
    fp32 image graph's of a bundle (it holds the backbone, the concept head and the latent
    encoder). None when the directory does not say."""
    p = Path(path)
    try:
        if encoder_kind(p) == "ceir-model":
            config = json.loads((p / "config.json").read_text(encoding="utf-8"))
            return str(config["files"]["weights.safetensors"]["sha256"])
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
        image = manifest["graphs"]["image"]["variants"]["fp32"]["file"]
        return str(manifest["files"][image]["sha256"])
    except (KeyError, TypeError, ValueError, OSError, IncompatibleFileError):
        return None


def load_encoder(path: str | Path, **runtime_options: Any) -> Encoder:
    """Load a model directory (torch) or an ONNX bundle (no torch) as an Encoder.

    ``runtime_options`` (precision, providers, threads, ...) go to the ONNX runtime; they do
    not apply to a torch model directory.
    """
    kind = encoder_kind(path)
    if kind == "ceir-model":
        if runtime_options:
            raise BadInputError(
                f"{path} is a torch model directory; {', '.join(sorted(runtime_options))} apply to ONNX bundles "
                "(export one with `ceir export onnx`)"
            )
        from ceir_sdk.model import CEIRModel

        return ModelEncoder(CEIRModel.load(path))
    # Through the registry, so the core never imports the exporter plugin itself.
    from ceir_sdk.errors import UnknownNameError
    from ceir_sdk.plugins import get_exporter

    try:
        exporter = get_exporter("onnx")
    except UnknownNameError as exc:
        raise BadInputError(
            f"{path} is an ONNX bundle; install ceir-onnx to use it: pip install 'ceir-sdk[onnx]'"
        ) from exc
    return RuntimeEncoder(exporter.open(path, **runtime_options))
