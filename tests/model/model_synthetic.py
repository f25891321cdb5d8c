"""Synthetic features with known concepts, and a tiny torch Backbone for fast model tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


def make_world(
    n: int, *, n_classes: int = 4, n_concepts: int = 24, dim: int = 32, noise: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, list[set[int]]]:
    """Features = sum of the text embeddings of the image's concepts + noise.

    Returns (features, labels, concept names, concept text embeddings, true concepts per image).
    Each class owns n_concepts // n_classes concepts and shows each with probability 0.8.
    """
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(n_concepts, dim)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    per = n_concepts // n_classes
    labels = rng.integers(0, n_classes, size=n)
    feats = np.empty((n, dim), np.float32)
    truth: list[set[int]] = []
    for i, y in enumerate(labels):
        own = [c for c in range(y * per, (y + 1) * per) if rng.random() < 0.8] or [y * per]
        truth.append(set(own))
        feats[i] = text[own].sum(0) + noise * rng.normal(size=dim)
    names = [f"concept {c}" for c in range(n_concepts)]
    return feats, labels, names, text, truth


class TinyBackbone:
    """contracts.Backbone over uint8 images: 8x8 average pooling, then a fixed random linear map."""

    name = "tiny:test"
    embed_dim = 16

    def __init__(self, seed: int = 123, device: str = "cpu") -> None:
        self.seed = seed
        self.device = device  # accepted, as a real backbone's; this one runs on the CPU
        gen = torch.Generator().manual_seed(seed)
        self.image = nn.Sequential(
            nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(8 * 8 * 3, self.embed_dim)
        ).eval()
        with torch.no_grad():
            self.image[2].weight.copy_(torch.randn(self.embed_dim, 192, generator=gen) * 0.1)
            self.image[2].bias.zero_()

    def encode_images(self, images: Any, *, batch_size: int = 64, progress: bool = True) -> np.ndarray:
        arr = np.asarray(images, dtype=np.float32) / 255.0
        with torch.no_grad():
            return self.image(torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()).numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.embed_dim), np.float32)
        for i, t in enumerate(texts):
            seed = sum(ord(ch) * (k + 1) for k, ch in enumerate(t))
            out[i] = np.random.default_rng(seed).normal(size=self.embed_dim)
        return out

    def preprocess_config(self) -> dict[str, Any]:
        # What encode_images does: the whole image averaged down to 8 x 8 (aspect not kept, no crop),
        # pixels in [0, 1]. PIL's bilinear downscale is a triangle filter, the pooling a box: close
        # (export measures the two against each other and refuses below min cosine 0.995).
        return {"image_size": 8, "resize": "squash", "crop": "none", "interpolation": "bilinear",
                "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}

    def torch_modules(self) -> dict[str, Any]:
        return {"image": self.image}

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "torch_version": torch.__version__}


# Small VAE settings so model tests stay fast.
SMALL_VAE = {"latent_dim": 6, "hidden_dim": 32, "max_epochs": 15, "patience": 5}
