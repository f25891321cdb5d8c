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
        if encode is None:  # a backbone with only the required members: no skip reports, no pixel limit
            from ceir_sdk.plugin_bases.backbone import refuse_policies_without_encode

            refuse_policies_without_encode(self.model.backbone, on_error=on_error, max_pixels=max_pixels)
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
    """Adapter for what an exporter's ``open()`` returns (the ONNX runtime of ceir-onnx); no torch.

    The runtime is an Encoder itself; this wrapper keeps the older API (``.runtime``) and turns
    a graph the bundle lacks into a clear error naming the way out.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.concepts: list[str] = list(runtime.concepts)

    def encode_images(self, images: Any) -> Pair:
        z, lat = self.runtime.encode_images(images)
        return np.asarray(z, np.float32), np.asarray(lat, np.float32)

    def encode_image_files(self, paths: Sequence[str], *, on_error: str = "fail",
                           max_pixels: int | None = None) -> Skippable:
        """Like encode_images for files, with the data layer's policy for unreadable ones."""
        z, lat, kept, skipped = self.runtime.encode_image_files(list(paths), on_error=on_error,
                                                                max_pixels=max_pixels)
        return np.asarray(z, np.float32), np.asarray(lat, np.float32), list(kept), list(skipped)

    def encode_texts(self, texts: Sequence[str]) -> Pair:
        fn = getattr(self.runtime, "encode_texts", None)
        if fn is None:
            raise BadInputError(
                "this bundle cannot map text into the latent space (no text-to-concepts graph); "
                "re-export it with a newer exporter or query with the torch model"
            )
        z, lat = fn(list(texts))
        return np.asarray(z, np.float32), np.asarray(lat, np.float32)

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        fn = getattr(self.runtime, "concept_vector", None)
        if fn is None:
            raise BadInputError(
                "this bundle has no concepts-to-latent graph, needed for concept edits; "
                "re-export it with a newer exporter or use the torch model"
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
    """Wrap a CEIRModel or a bundle runtime (or pass an Encoder through)."""
    if hasattr(obj, "encode_features") and hasattr(obj, "latent_model"):
        return ModelEncoder(obj)
    if hasattr(obj, "encode_images") and hasattr(obj, "embed_texts"):  # a runtime an exporter opened
        return RuntimeEncoder(obj)
    if isinstance(obj, Encoder):
        return obj
    raise BadInputError(
        f"{type(obj).__name__} is not an encoder: give a CEIRModel, an ONNX Runtime, or an object with "
        "encode_images, encode_texts and concept_vector"
    )


#: The core's own format: a fitted model directory (``CEIRModel.save``). Bundles are the
#: exporters' formats; the core asks them (``recognises``/``fingerprint``/``open``).
MODEL_KIND = "ceir-model"


def _is_model_dir(p: Path) -> bool:
    try:
        return bool(json.loads((p / "config.json").read_text(encoding="utf-8")).get("format") == MODEL_KIND)
    except (OSError, ValueError, AttributeError):
        return False


def encoder_kind(path: str | Path) -> str:
    """'ceir-model', or '<exporter>-bundle' for a bundle an installed exporter recognises."""
    from ceir_sdk.plugins import exporter_for

    p = Path(path)
    if _is_model_dir(p):
        return MODEL_KIND
    found = exporter_for(p)
    if found is not None:
        return f"{found[0]}-bundle"
    raise IncompatibleFileError(_not_an_encoder(p))


def _not_an_encoder(p: Path) -> str:
    from ceir_sdk.plugins import get_host

    readers = sorted(get_host().registrations("exporter"))
    return (f"{p} is neither a fitted CEIR model directory nor a bundle that an installed exporter recognises "
            f"(exporters installed: {', '.join(readers) or 'none'}); an ONNX bundle needs the onnx exporter: "
            "pip install 'ceir-sdk[onnx]'")


def model_fingerprint(path: str | Path) -> str | None:
    """What identifies a fitted model's numbers: the weights' checksum of a model directory, what
    the bundle's exporter names for a bundle. None when the directory does not say."""
    from ceir_sdk.plugins import exporter_for

    p = Path(path)
    if _is_model_dir(p):
        try:
            config = json.loads((p / "config.json").read_text(encoding="utf-8"))
            return str(config["files"]["weights.safetensors"]["sha256"])
        except (KeyError, TypeError, ValueError, OSError):
            return None
    found = exporter_for(p)
    return None if found is None else found[1].fingerprint(p)


def load_encoder(path: str | Path, **runtime_options: Any) -> Encoder:
    """Load a model directory (torch) or a bundle (through the exporter that wrote it; no torch).

    ``runtime_options`` (precision, providers, threads, ...) go to the bundle's runtime; they do
    not apply to a torch model directory.
    """
    from ceir_sdk.plugins import exporter_for

    p = Path(path)
    if _is_model_dir(p):
        if runtime_options:
            raise BadInputError(
                f"{path} is a torch model directory; {', '.join(sorted(runtime_options))} apply to ONNX bundles "
                "(export one with `ceir export onnx`)"
            )
        from ceir_sdk.model import CEIRModel

        return ModelEncoder(CEIRModel.load(path))
    found = exporter_for(p)
    if found is None:
        raise BadInputError(_not_an_encoder(p))
    return as_encoder(found[1].open(p, **runtime_options))
