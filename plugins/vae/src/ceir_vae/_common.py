"""Helpers shared by the latent models: seeding, array checks, tensor naming."""

from __future__ import annotations

import numpy as np
import torch

from ceir_sdk.arrays import float32_matrix


def as_float32_matrix(x: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    """Check a (N, C) float array and return it as contiguous float32."""
    return float32_matrix(x, what, dim=dim, mismatch="the model was fitted on {want} columns; use concept "
                                                     "activations from the same fitted model")


def module_state(module: torch.nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """All parameters and buffers as float32 numpy arrays (BatchNorm counters dropped)."""
    out: dict[str, np.ndarray] = {}
    for name, tensor in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue  # int64 bookkeeping, unused in eval mode
        out[prefix + name] = tensor.detach().cpu().numpy().astype(np.float32)
    return out


def load_module_state(module: torch.nn.Module, tensors: dict[str, np.ndarray], prefix: str = "") -> None:
    expected = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k[len(prefix):] for k in tensors if k.startswith(prefix)}
    if expected != given:
        missing = sorted(expected - given)
        extra = sorted(given - expected)
        raise ValueError(f"latent model tensors do not match: missing {missing}, unexpected {extra}")
    state = {k: torch.from_numpy(np.asarray(tensors[prefix + k], dtype=np.float32)) for k in expected}
    module.load_state_dict(state, strict=False)
