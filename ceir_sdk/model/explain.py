"""Integrated gradients from the latent back to the concept inputs.

What is attributed: a scalar f(z) = <latent(z), u>, the latent projected onto a unit
direction u, where z are the z-scored concept activations. The baseline is z = 0, the
training-mean image. Targets choose u:

- "self" (default): u = (latent(z) - latent(0)) / |...|; f(z) - f(0) is then the distance the
  image's latent lies from the mean image's latent, and each contribution says how much a
  concept moved it there;
- a cluster centroid (``direction=centroid - latent(0)``): how much each concept pulls the image
  towards that cluster;
- an int k: latent dimension k (u = e_k).

Contributions are signed; a positive contribution from a concept whose activation is below the
mean (z < 0) reads "NOT <concept>". They are complete: they sum to f(z) - f(0); the number of
integration steps doubles until the sum matches within ``tolerance`` (default 0.5 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(eq=False)
class Explanation:
    """Signed concept contributions for one image."""

    concepts: list[str]
    contributions: np.ndarray  # (C,), sum == output - baseline_output
    activations: np.ndarray  # (C,) z-scored concept activations of the image
    output: float
    baseline_output: float
    target: str
    steps: int
    # (C,) z-score from which each concept counts as present (ceir_sdk.model.presence);
    # None: above the training mean (z > 0), as models saved before calibration had it.
    presence_thresholds: np.ndarray | None = None
    # Per concept, the concepts that must be present with it (ceir_sdk.concepts.generality:
    # "red" and "round" for "red dotted round"); None: none required.
    presence_requirements: list[list[int]] | None = None

    @property
    def present(self) -> np.ndarray:
        """(C,) bool: which concepts the image shows."""
        from ceir_sdk.concepts.generality import presence_mask

        return presence_mask(self.activations, self.presence_thresholds, self.presence_requirements)

    @property
    def completeness_error(self) -> float:
        diff = self.output - self.baseline_output
        return abs(float(self.contributions.sum()) - diff) / max(abs(diff), 1e-8)

    def top(self, k: int = 5, *, sign: str = "positive") -> list[tuple[str, float, bool]]:
        """(phrase, contribution, present) for the k largest contributions of a sign.

        ``present`` is False when the image does not show the concept (see :attr:`present`);
        such a concept reads "NOT <phrase>". sign: "positive", "negative" or "abs".
        """
        c = self.contributions
        if sign == "positive":
            order = np.argsort(-c)
            order = order[c[order] > 0]
        elif sign == "negative":
            order = np.argsort(c)
            order = order[c[order] < 0]
        elif sign == "abs":
            order = np.argsort(-np.abs(c))
        else:
            raise ValueError(f"sign must be 'positive', 'negative' or 'abs', not {sign!r}")
        present = self.present
        return [(self.concepts[i], float(c[i]), bool(present[i])) for i in order[:k]]

    def top_present(self, k: int = 5) -> list[tuple[str, float]]:
        """The k concepts present in the image that push the output up the most."""
        c = np.where(self.present, self.contributions, -np.inf)
        order = [i for i in np.argsort(-c) if np.isfinite(c[i]) and c[i] > 0][:k]
        return [(self.concepts[i], float(self.contributions[i])) for i in order]

    def labelled(self, k: int = 10) -> list[tuple[str, float]]:
        """The k largest |contributions| with "NOT " before absent concepts, for display."""
        return [(phrase if present else f"NOT {phrase}", value) for phrase, value, present in self.top(k, sign="abs")]

    def as_dict(self, k: int = 10) -> dict[str, Any]:
        return {
            "target": self.target,
            "output": self.output,
            "baseline_output": self.baseline_output,
            "completeness_error": self.completeness_error,
            "steps": self.steps,
            "top": [{"concept": c, "contribution": v} for c, v in self.labelled(k)],
        }


def _trapezoid_ig(
    encoder: nn.Module, z: torch.Tensor, u: torch.Tensor, steps: int, chunk_rows: int = 65536
) -> torch.Tensor:
    """IG with the trapezoid rule on [0, z] for every row of z; returns (B, C)."""
    b, c = z.shape
    alphas = torch.linspace(0.0, 1.0, steps + 1)
    weights = torch.full((steps + 1,), 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps
    grads_sum = torch.zeros(b, c)
    per_chunk = max(1, chunk_rows // (steps + 1))
    for start in range(0, b, per_chunk):
        zb, ub = z[start : start + per_chunk], u[start : start + per_chunk]
        path = (alphas[None, :, None] * zb[:, None, :]).reshape(-1, c).requires_grad_(True)
        out = encoder(path).reshape(len(zb), steps + 1, -1)
        scalar = (out * ub[:, None, :]).sum()
        (grad,) = torch.autograd.grad(scalar, path)
        grads_sum[start : start + per_chunk] = (grad.reshape(len(zb), steps + 1, c) * weights[None, :, None]).sum(1)
    return grads_sum * z


def integrated_gradients(
    encoder: nn.Module,
    z: np.ndarray,
    directions: np.ndarray,
    *,
    steps: int = 64,
    max_steps: int = 4096,
    tolerance: float = 0.005,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Attributions (B, C) of f(z) = <encoder(z), u> against the zero baseline.

    Returns (attributions, f(z), f(0), steps used). Steps double until every row is complete
    within ``tolerance`` (relative) or ``max_steps`` is reached.
    """
    encoder = encoder.eval()
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    ut = torch.from_numpy(np.ascontiguousarray(directions, dtype=np.float32))
    with torch.no_grad():
        f_x = (encoder(zt) * ut).sum(1)
        f_0 = (encoder(torch.zeros_like(zt)) * ut).sum(1)
    diff = (f_x - f_0).double()
    while True:
        attr = _trapezoid_ig(encoder, zt, ut, steps)
        err = (attr.double().sum(1) - diff).abs() / diff.abs().clamp_min(1e-6)
        if float(err.max()) <= tolerance or steps >= max_steps:
            break
        steps *= 2
    return attr.numpy(), f_x.numpy(), f_0.numpy(), steps
