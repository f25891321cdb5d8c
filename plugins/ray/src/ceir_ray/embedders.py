"""What runs inside each Ray actor: one onnxruntime session, opened once per actor.

An *embedder factory* is a picklable zero-argument callable that Ray ships to each actor;
the actor calls it once and then calls the result on every batch of decoded images. The
default one opens ceir_onnx's torch-free Runtime; tests inject others (one that crashes).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# images (PIL) -> (concepts (N, C) float32, latent (N, L) float32)
EmbedFn = Callable[[Sequence[Any]], tuple[np.ndarray, np.ndarray]]
EmbedderFactory = Callable[[], EmbedFn]


@dataclass(frozen=True)
class OnnxEmbedder:
    """Factory for a ceir_onnx Runtime over ``bundle``; ``providers`` "cpu", "cuda" or "auto"."""

    bundle: str
    precision: str = "fp32"
    providers: str = "cpu"
    threads: int | None = 1
    batch_size: int = 64
    backend: str = "auto"  # onnxruntime, openvino, or auto (ceir_onnx.runtime.tune)

    def __call__(self) -> EmbedFn:
        from ceir_onnx.runtime import Runtime
        from ceir_onnx.runtime.preprocess import preprocess_one

        rt = Runtime(self.bundle, precision=self.precision, backend=self.backend, providers=self.providers,
                     threads=self.threads, batch_size=self.batch_size)
        cfg = rt.preprocess_config

        def embed(images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
            out = rt.run_pixels(np.stack([preprocess_one(im, cfg) for im in images]))
            return out.concepts, out.latent

        return embed


def decode(item: Any) -> Any:
    """Bytes or a path -> a loaded PIL image (errors propagate to be recorded per row)."""
    from PIL import Image

    if item is None:
        raise ValueError("no image (empty value)")
    img = Image.open(io.BytesIO(item) if isinstance(item, (bytes, bytearray)) else os.fspath(item))
    img.load()
    return img
