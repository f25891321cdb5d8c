"""The small typed contracts plugins implement.

Arrays cross these boundaries as numpy float32 so the core, exporters and the
torch-free runtime agree; torch appears only where an exporter needs a module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from ceir_sdk.concepts.conceptset import ConceptSet


#: The generation settings ceir_sdk.concepts.LLMConceptSource takes; LLM plugins declare these (plus their
#: client's own, such as base_url) when they register, so the CLI knows what to pass.
LLM_SOURCE_OPTIONS = ("n_samples", "temperature", "max_in_flight", "cache_dir", "prompts", "kinds", "max_tokens",
                      "timeout", "max_retries", "use_cache", "retry_empty")


@runtime_checkable
class ConceptSource(Protocol):
    """Turns the class names of a domain into a set of concept phrases."""

    name: str

    def generate(
        self, class_names: Sequence[str], *, domain: str | None = None, progress: bool = True
    ) -> ConceptSet: ...


@runtime_checkable
class Backbone(Protocol):
    """Image and text encoders into one embedding space (a CLIP-like model)."""

    name: str
    embed_dim: int

    def encode_images(self, images: Any, *, batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Unnormalised float32 features (N, embed_dim) for images in any supported form."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unnormalised float32 text features (N, embed_dim); texts are used as given."""
        ...

    def preprocess_config(self) -> dict[str, Any]:
        """Image preprocessing as data (size, resize mode, interpolation, mean, std)."""
        ...

    def torch_modules(self) -> dict[str, Any]:
        """``{"image": module(pixels) -> features, "text": module(tokens) -> features}``."""
        ...

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which the registry can rebuild this backbone."""
        ...


@runtime_checkable
class LatentModel(Protocol):
    """Maps z-scored concept activations (N, C) to the final representation (N, L)."""

    name: str
    latent_dim: int

    def fit(
        self,
        x: np.ndarray,
        *,
        x_val: np.ndarray | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> LatentModel: ...

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Deterministic latent (posterior mean in eval mode for a VAE)."""
        ...

    def decode(self, z: np.ndarray) -> np.ndarray: ...

    def encoder_module(self) -> Any:
        """A torch module (B, C) -> (B, L) equal to :meth:`encode`, for export and attribution."""
        ...

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON config and named float32 arrays; :meth:`load_state` restores them."""
        ...

    def load_state(self, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> None: ...


@runtime_checkable
class Exporter(Protocol):
    """Writes a fitted model directory into a deployment format.

    An exporter whose bundles the core should be able to use (``ceir index build --model
    BUNDLE``, ``ceir explain BUNDLE``, ``load_encoder``) also implements :class:`BundleReader`:
    the core then never needs to know the bundle's format.
    """

    name: str

    def export(self, model_dir: str | Path, out_dir: str | Path, **options: Any) -> Path: ...


@runtime_checkable
class BundleReader(Protocol):
    """What the core asks of an exporter about the bundles it wrote (optional members of an Exporter)."""

    def recognises(self, path: str | Path) -> bool:
        """Whether ``path`` is a bundle of this exporter's format (cheap: no checksums)."""
        ...

    def fingerprint(self, path: str | Path) -> str | None:
        """A string that changes whenever the bundle's numbers do (an index records it to notice a
        re-export); None when the bundle does not say."""
        ...

    def open(self, path: str | Path, **options: Any) -> Any:
        """The bundle loaded for inference: an object with ``concepts``, ``encode_images``,
        ``encode_texts`` and ``concept_vector`` (an ``ceir_sdk.index.Encoder``); ``options`` are the
        runtime's (precision, providers, threads, ...). ``encode_image_files`` and ``explain`` let
        the CLI skip unreadable files and explain images."""
        ...
