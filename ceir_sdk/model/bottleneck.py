"""The concept bottleneck: backbone features -> concept activations (METHOD.md, step 3-4).

P = normalised image features x normalised concept text features. Concepts CLIP cannot see
(low top-5 activation) are dropped before training; a bias-free linear projection is trained
with Adam to maximise the cos^3 similarity between its outputs and P, selected on a validation
split; concepts it cannot learn (validation similarity <= 0.45) are dropped after; the kept
activations are z-scored with training statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ceir_sdk.errors import BadInputError

_EPS = 1e-12


@dataclass
class BottleneckConfig:
    # A float is an absolute cutoff on the mean top-5 activation (the paper's 0.25 suits large
    # CLIP models); "auto" is data-relative: drop concepts whose top-5 mean is a low outlier
    # (below median - 3 robust standard deviations) among all concepts, because small or
    # differently trained CLIP models have other similarity scales.
    visibility_cutoff: float | str = "auto"
    interpretability_cutoff: float = 0.45
    lr: float = 1e-3
    max_steps: int = 1000
    eval_every: int = 10
    patience: int = 100  # steps without validation improvement before stopping
    # "text" starts at the concept text embeddings. When the backbone is the CLIP image encoder
    # (always, in this SDK) P is itself linear in the normalised features, so W = T reproduces
    # P exactly and is a global optimum of the cos^3 objective: training then stops at step 0
    # unless validation improves. "random" is the paper's start (1,000 slow full-batch steps;
    # about 1.5 s per step for 45,000 x 512 features on two CPU cores).
    init: str = "text"

    def __post_init__(self) -> None:
        if isinstance(self.visibility_cutoff, str) and self.visibility_cutoff != "auto":
            raise BadInputError(
                f"visibility_cutoff must be a number or 'auto', got {self.visibility_cutoff!r}"
            )
        if self.init not in ("random", "text"):
            raise BadInputError(f"bottleneck init must be 'random' or 'text', got {self.init!r}")


@dataclass
class BottleneckReport:
    """What fitting kept and dropped, and why (stored in the model's config.json)."""

    visibility_cutoff: float = 0.0
    visibility_rule: str = ""
    dropped_not_visible: dict[str, float] = field(default_factory=dict)  # concept -> top-5 mean
    dropped_not_learnable: dict[str, float] = field(default_factory=dict)  # concept -> val sim
    initial_val_similarity: float = 0.0
    steps_run: int = 0
    best_step: int = 0
    best_val_similarity: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    # Written with plain ops (not F.normalize) so the exported ONNX graph stays simple.
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True)).clamp_min(_EPS)


def _cubed_columns(a: torch.Tensor) -> torch.Tensor:
    """Centre each column over the batch, cube, normalise the column (Label-free CBM's cos^3)."""
    a = a - a.mean(dim=0, keepdim=True)
    a = a**3
    return a / torch.sqrt((a * a).sum(dim=0, keepdim=True)).clamp_min(_EPS)


def cos3_similarity(projected: torch.Tensor, target_cubed: torch.Tensor) -> torch.Tensor:
    """Per-concept cos^3 similarity between projected activations and (pre-cubed) targets."""
    return (_cubed_columns(projected) * target_cubed).sum(dim=0)


def concept_activations(features: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """P: cosine similarity of every image with every concept text, (N, C) float32."""
    x = l2_normalise(torch.from_numpy(np.asarray(features, dtype=np.float32)))
    t = l2_normalise(torch.from_numpy(np.asarray(text_embeddings, dtype=np.float32)))
    return (x @ t.T).numpy()


def _visibility_cutoff(top5: np.ndarray, setting: float | str) -> tuple[float, str]:
    if setting == "auto":
        median = float(np.median(top5))
        mad = float(np.median(np.abs(top5 - median))) * 1.4826
        return median - 3.0 * mad, "auto: median - 3 robust std of the concepts' top-5 mean activation"
    return float(setting), "absolute cutoff on the mean top-5 activation"


class ConceptHead(nn.Module):
    """Backbone features (B, D) -> (z-scored concept activations (B, C), latent (B, L)).

    This one module is what encode_features runs, what the ONNX exporter traces and what
    explanations differentiate, so the three can never disagree.
    """

    def __init__(
        self, weight: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, latent: nn.Module
    ) -> None:
        super().__init__()
        self.weight: torch.Tensor
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("weight", weight.detach().clone().float())
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float())
        self.latent = latent

    def concepts(self, features: torch.Tensor) -> torch.Tensor:
        activations = l2_normalise(features) @ self.weight.T
        return (activations - self.mean) / self.std

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.concepts(features)
        return z, self.latent(z)


class ConceptBottleneck:
    """Fitted projection W (C, D) plus z-score statistics for the kept concepts."""

    def __init__(self, config: BottleneckConfig | None = None) -> None:
        self.config = config or BottleneckConfig()
        self.concepts: list[str] = []
        self.weight: np.ndarray | None = None  # (C, D), applied to L2-normalised features
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.kept_index: np.ndarray | None = None  # indices into the concepts given to fit
        self.report = BottleneckReport()

    def fit(
        self,
        features: np.ndarray,
        val_features: np.ndarray,
        text_embeddings: np.ndarray,
        concepts: list[str],
        *,
        seed: int = 0,
        progress: bool = True,
    ) -> ConceptBottleneck:
        cfg = self.config
        if len(val_features) < 2:
            raise BadInputError("the bottleneck needs at least 2 validation rows for model selection")
        x = l2_normalise(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
        xv = l2_normalise(torch.from_numpy(np.ascontiguousarray(val_features, dtype=np.float32)))
        t = l2_normalise(torch.from_numpy(np.ascontiguousarray(text_embeddings, dtype=np.float32)))
        p = x @ t.T
        report = BottleneckReport()

        # 1. Visibility: a concept whose best-matching training images barely match it is not
        # something the backbone can see.
        k = min(5, len(p))
        top5 = p.topk(k, dim=0).values.mean(dim=0).numpy()
        cutoff, rule = _visibility_cutoff(top5, cfg.visibility_cutoff)
        report.visibility_cutoff, report.visibility_rule = cutoff, rule
        visible = np.flatnonzero(top5 > cutoff)
        report.dropped_not_visible = {concepts[i]: float(top5[i]) for i in np.flatnonzero(top5 <= cutoff)}
        if len(visible) == 0:
            raise BadInputError(
                f"no concept is visible to the backbone: every mean top-5 activation is <= {cutoff:.3f} "
                f"(highest {top5.max():.3f}); lower visibility_cutoff or use 'auto'"
            )
        vis = torch.from_numpy(visible)
        target = _cubed_columns(p[:, vis])
        target_val = _cubed_columns(xv @ t[vis].T)

        # 2. The projection, full batch, selected on the validation split.
        gen = torch.Generator().manual_seed(seed)
        if cfg.init == "text":
            w0 = t[vis].clone()
        else:  # nn.Linear's default initialisation, drawn from our own generator
            bound = 1.0 / np.sqrt(x.shape[1])
            w0 = (torch.rand(len(visible), x.shape[1], generator=gen) * 2 - 1) * bound
        w = nn.Parameter(w0)
        opt = torch.optim.Adam([w], lr=cfg.lr)
        with torch.no_grad():
            best_val = float(cos3_similarity(xv @ w.T, target_val).mean())
        best_step, best_w, stale = 0, w.detach().clone(), 0
        report.initial_val_similarity = best_val
        # Already at the maximum (similarity 1 for every concept): nothing to train.
        max_steps = 0 if best_val >= 1.0 - 1e-5 else cfg.max_steps
        bar = tqdm(total=max_steps, desc="concept projection", unit="step", disable=not progress, leave=False)
        step = 0
        for step in range(1, max_steps + 1):
            loss = -cos3_similarity(x @ w.T, target).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            if step % cfg.eval_every == 0 or step == max_steps:
                with torch.no_grad():
                    val = float(cos3_similarity(xv @ w.T, target_val).mean())
                bar.set_postfix(train=f"{-loss.item():.3f}", val=f"{val:.3f}")
                if val > best_val + 1e-5:
                    best_val, best_step, best_w, stale = val, step, w.detach().clone(), 0
                else:
                    stale += cfg.eval_every
                    if stale >= cfg.patience:
                        break
        bar.close()
        report.steps_run, report.best_step, report.best_val_similarity = step, best_step, best_val

        # 3. Interpretability: keep concepts the projection reproduces on validation data.
        with torch.no_grad():
            sims = cos3_similarity(xv @ best_w.T, target_val).numpy()
        learnable = sims > cfg.interpretability_cutoff
        report.dropped_not_learnable = {
            concepts[visible[i]]: float(sims[i]) for i in np.flatnonzero(~learnable)
        }
        if not learnable.any():
            raise BadInputError(
                f"no concept passed the interpretability cutoff {cfg.interpretability_cutoff} "
                f"(best validation similarity {sims.max():.3f}); lower interpretability_cutoff "
                "or fit on more images"
            )
        kept = visible[learnable]
        weight = best_w[torch.from_numpy(np.flatnonzero(learnable))]

        # 4. z-scoring with training statistics only.
        with torch.no_grad():
            acts = x @ weight.T
        self.mean = acts.mean(dim=0).numpy().astype(np.float32)
        self.std = np.maximum(acts.std(dim=0).numpy(), 1e-6).astype(np.float32)
        self.weight = weight.numpy().astype(np.float32)
        self.kept_index = kept
        self.concepts = [concepts[i] for i in kept]
        self.report = report
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        """z-scored concept activations (N, C) for backbone features (N, D)."""
        if self.weight is None or self.mean is None or self.std is None:
            raise RuntimeError("the bottleneck is not fitted")
        x = l2_normalise(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
        with torch.no_grad():
            acts = (x @ torch.from_numpy(self.weight).T).numpy()
        return ((acts - self.mean) / self.std).astype(np.float32)

    def tensors(self) -> dict[str, np.ndarray]:
        assert self.weight is not None and self.mean is not None and self.std is not None
        return {"weight": self.weight, "mean": self.mean, "std": self.std}

    def load_tensors(self, tensors: dict[str, np.ndarray], concepts: list[str]) -> None:
        self.weight = np.asarray(tensors["weight"], dtype=np.float32)
        self.mean = np.asarray(tensors["mean"], dtype=np.float32)
        self.std = np.asarray(tensors["std"], dtype=np.float32)
        self.concepts = list(concepts)
