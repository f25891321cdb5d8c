"""Latent models for ablations: identity (the concept activations themselves) and PCA."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ceir_vae._common import as_float32_matrix


class IdentityLatentModel:
    """The latent is the z-scored concept activation vector (no compression)."""

    name = "identity"

    def __init__(self) -> None:
        self.in_dim: int | None = None

    @property
    def latent_dim(self) -> int:
        if self.in_dim is None:
            raise RuntimeError("identity latent model is not fitted")
        return self.in_dim

    def fit(
        self, x: np.ndarray, *, x_val: np.ndarray | None = None, seed: int = 0, progress: bool = True
    ) -> IdentityLatentModel:
        self.in_dim = as_float32_matrix(x, "training activations").shape[1]
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return as_float32_matrix(x, "concept activations", self.in_dim).copy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        return as_float32_matrix(z, "latent", self.in_dim).copy()

    def encoder_module(self) -> nn.Module:
        return nn.Identity().eval()

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"in_dim": self.in_dim}, {}

    def load_state(self, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        self.in_dim = int(config["in_dim"])


class PCALatentModel:
    """Principal components of the training activations (an affine, linear encoder)."""

    name = "pca"

    def __init__(self, latent_dim: int = 32, whiten: bool = False) -> None:
        self.config = {"latent_dim": int(latent_dim), "whiten": bool(whiten)}
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None  # (L, C), rows scaled when whitening

    @property
    def latent_dim(self) -> int:
        if self.components is not None:
            return int(self.components.shape[0])
        return int(self.config["latent_dim"])

    def fit(
        self, x: np.ndarray, *, x_val: np.ndarray | None = None, seed: int = 0, progress: bool = True
    ) -> PCALatentModel:
        xs = as_float32_matrix(x, "training activations").astype(np.float64)
        self.mean = xs.mean(axis=0)
        _, s, vt = np.linalg.svd(xs - self.mean, full_matrices=False)
        k = min(int(self.config["latent_dim"]), vt.shape[0])
        comps = vt[:k]
        # Fix the sign of each component so the result does not depend on the LAPACK build.
        signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
        comps = comps * signs[:, None]
        if self.config["whiten"]:
            scale = s[:k] / np.sqrt(max(len(xs) - 1, 1))
            comps = comps / np.maximum(scale, 1e-12)[:, None]
        self.components = comps.astype(np.float32)
        self.mean = self.mean.astype(np.float32)
        return self

    def _require(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.components is None:
            raise RuntimeError("the PCA latent model is not fitted; call fit() first")
        return self.mean, self.components

    def encode(self, x: np.ndarray) -> np.ndarray:
        mean, comps = self._require()
        xs = as_float32_matrix(x, "concept activations", len(mean))
        return ((xs - mean) @ comps.T).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        mean, comps = self._require()
        zs = as_float32_matrix(z, "latent", comps.shape[0])
        return (zs @ np.linalg.pinv(comps).T + mean).astype(np.float32)

    def encoder_module(self) -> nn.Module:
        mean, comps = self._require()
        layer = nn.Linear(comps.shape[1], comps.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(comps))
            layer.bias.copy_(torch.from_numpy(-(comps @ mean)))
        return layer.eval()

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        mean, comps = self._require()
        return dict(self.config), {"mean": mean, "components": comps}

    def load_state(self, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        self.config = {"latent_dim": int(config["latent_dim"]), "whiten": bool(config["whiten"])}
        self.mean = np.asarray(tensors["mean"], dtype=np.float32)
        self.components = np.asarray(tensors["components"], dtype=np.float32)
