"""The concept bottleneck: backbone features -> concept activations (METHOD.md, step 3-4).

P = normalised image features x normalised concept text features, both from the concept model
(a CLIP; by default the backbone itself). Concepts it cannot see (low top-5 activation) are
dropped before training; a bias-free linear projection from the *backbone's* features is
trained with Adam to maximise the cos^3 similarity between its outputs and P, selected on a
validation split; concepts it cannot learn (validation similarity <= 0.45) are dropped after;
the kept activations are z-scored with training statistics.

When the concept model is the backbone, P is itself linear in the normalised features: the
text-embedding start W = T reproduces P exactly, training stops at step 0 and the projection
*is* the zero-shot scores (the report says so). The reference (CEIR, Label-free CBM) teaches
the backbone another model's scores (ViT-L/14 features, ViT-B/16 targets) from a random start;
``targets=`` in :meth:`ConceptBottleneck.fit` is that configuration.
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

#: projection starts (BottleneckConfig.init)
INITS = ("auto", "random", "text")
#: named visibility rules; a number is an absolute cutoff on the mean top-5 activation
VISIBILITY_RULES = {
    "auto": "median - 3 robust standard deviations of the concepts' top-5 mean activation",
    "reference": "the reference's absolute cutoff 0.25 on the mean top-5 activation (CLIP-scale models)",
}
#: the reference's (CEIR's train_cbm.py) absolute visibility cutoff
REFERENCE_VISIBILITY_CUTOFF = 0.25
#: the report's words when the projection starts at (and so stays) the zero-shot scores
ZERO_SHOT_NOTE = ("projection = zero-shot scores: the concept targets come from the backbone's own text "
                  "tower, so the text-embedding start already reproduces them exactly and the bottleneck "
                  "learns nothing beyond CLIP's zero-shot scores, z-scored (give a separate concept "
                  "model to train it as the reference does)")


@dataclass
class BottleneckConfig:
    # A float is an absolute cutoff on the mean top-5 activation (the reference's 0.25 suits
    # CLIP-scale models); "auto" is data-relative: drop concepts whose top-5 mean is a low outlier
    # (below median - 3 robust standard deviations) among all concepts, because small or
    # differently trained CLIP models have other similarity scales. See VISIBILITY_RULES.
    visibility_cutoff: float | str = "auto"
    # Validation cos^3 similarity a concept must exceed to be kept (the reference's 0.45).
    interpretability_cutoff: float = 0.45
    lr: float = 1e-3
    max_steps: int = 1000
    eval_every: int = 10
    patience: int = 100  # steps without validation improvement before stopping
    # "text" starts at the concept text embeddings. When the targets come from the backbone's
    # own text tower, P is linear in the normalised features, so W = T reproduces P exactly and
    # is a global optimum of the cos^3 objective: training stops at step 0 (the projection is
    # the zero-shot scores). "random" is the reference's start (nn.Linear's initialisation; up
    # to 1,000 full-batch steps, about 1.5 s per step for 45,000 x 512 features on two CPU
    # cores). "auto": "text" when the targets are the backbone's own, "random" when they come
    # from a separate concept model (whose text width may differ, so "text" may not even apply).
    # Saved models carry the value they were fitted with ("text" before "auto" existed).
    init: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.visibility_cutoff, str) and self.visibility_cutoff not in VISIBILITY_RULES:
            raise BadInputError(
                f"visibility_cutoff must be a number or one of {', '.join(VISIBILITY_RULES)}, "
                f"got {self.visibility_cutoff!r}"
            )
        if self.init not in INITS:
            raise BadInputError(f"bottleneck init must be one of {', '.join(INITS)}, got {self.init!r}")


@dataclass
class BottleneckReport:
    """What fitting kept and dropped, and why (stored in the model's config.json)."""

    visibility_cutoff: float = 0.0
    visibility_rule: str = ""
    dropped_not_visible: dict[str, float] = field(default_factory=dict)  # concept -> top-5 mean
    learnability_cutoff: float = 0.0
    learnability_rule: str = ""
    dropped_not_learnable: dict[str, float] = field(default_factory=dict)  # concept -> val sim
    n_given: int = 0
    n_visible: int = 0
    n_kept: int = 0
    #: where P came from: "backbone" (its own text tower) or "concept model"
    targets: str = "backbone"
    init: str = ""  # the start actually used ("auto" resolved)
    #: True when the projection started at, and stayed, the zero-shot scores (ZERO_SHOT_NOTE)
    projection_is_zero_shot: bool = False
    note: str = ""
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


def top5_mean(p: np.ndarray) -> np.ndarray:
    """Per concept, the mean of its 5 highest activations over the images (the visibility score)."""
    k = min(5, len(p))
    return np.sort(np.asarray(p, dtype=np.float32), axis=0)[len(p) - k:].mean(axis=0)


def visibility_cutoff(top5: np.ndarray, setting: float | str) -> tuple[float, str]:
    """(cutoff, the rule in words): concepts whose top-5 mean is at or below the cutoff are dropped."""
    if setting == "auto":
        median = float(np.median(top5))
        mad = float(np.median(np.abs(top5 - median))) * 1.4826
        return median - 3.0 * mad, "auto: " + VISIBILITY_RULES["auto"]
    if setting == "reference":
        return REFERENCE_VISIBILITY_CUTOFF, "reference: " + VISIBILITY_RULES["reference"]
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
        targets: np.ndarray | None = None,
        val_targets: np.ndarray | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> ConceptBottleneck:
        """Fit on backbone ``features`` (training rows) and ``val_features`` (validation rows).

        ``targets`` / ``val_targets``: the concept model's image features of the same rows, when
        the concept scores P come from a model other than the backbone (``text_embeddings`` are
        then that model's, of its width). Without them P is the backbone's own zero-shot scores.
        """
        cfg = self.config
        if len(val_features) < 2:
            raise BadInputError("the bottleneck needs at least 2 validation rows for model selection")
        if (targets is None) != (val_targets is None):
            raise BadInputError("give both targets and val_targets (the concept model's features), or neither")
        x = l2_normalise(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
        xv = l2_normalise(torch.from_numpy(np.ascontiguousarray(val_features, dtype=np.float32)))
        t = l2_normalise(torch.from_numpy(np.ascontiguousarray(text_embeddings, dtype=np.float32)))
        separate = targets is not None
        if targets is not None and val_targets is not None:
            y = l2_normalise(torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)))
            yv = l2_normalise(torch.from_numpy(np.ascontiguousarray(val_targets, dtype=np.float32)))
            if y.shape[0] != x.shape[0] or yv.shape[0] != xv.shape[0]:
                raise BadInputError(
                    f"the concept model's features have {y.shape[0]} + {yv.shape[0]} rows but the backbone's "
                    f"{x.shape[0]} + {xv.shape[0]}; both must encode the same images in the same order")
            if y.shape[1] != t.shape[1]:
                raise BadInputError(
                    f"the concept model's image features are {y.shape[1]}-dimensional but its concept text "
                    f"embeddings {t.shape[1]}-dimensional; both must come from the same concept model")
        else:
            if t.shape[1] != x.shape[1]:
                raise BadInputError(
                    f"concept text embeddings are {t.shape[1]}-dimensional but the backbone's features "
                    f"{x.shape[1]}-dimensional: without a separate concept model the targets are the "
                    "backbone's own zero-shot scores; give concept_model= (and its image features) instead")
            y, yv = x, xv
        init = cfg.init if cfg.init != "auto" else ("random" if separate else "text")
        if init == "text" and t.shape[1] != x.shape[1]:
            raise BadInputError(
                f"init='text' starts the projection at the concept text embeddings ({t.shape[1]} wide), "
                f"which cannot project the backbone's {x.shape[1]}-dimensional features; use init='random'")
        p = y @ t.T
        report = BottleneckReport(n_given=len(concepts), targets="concept model" if separate else "backbone",
                                  init=init, learnability_cutoff=float(cfg.interpretability_cutoff))

        # 1. Visibility: a concept whose best-matching training images barely match it is not
        # something the concept model can see (the reference drops them before training).
        top5 = top5_mean(p.numpy())
        cutoff, rule = visibility_cutoff(top5, cfg.visibility_cutoff)
        report.visibility_cutoff, report.visibility_rule = cutoff, rule
        visible = np.flatnonzero(top5 > cutoff)
        report.dropped_not_visible = {concepts[i]: float(top5[i]) for i in np.flatnonzero(top5 <= cutoff)}
        report.n_visible = len(visible)
        if len(visible) == 0:
            raise BadInputError(
                f"no concept is visible to the concept model: every mean top-5 activation is <= {cutoff:.3f} "
                f"(highest {top5.max():.3f}); lower visibility_cutoff or use 'auto'"
            )
        vis = torch.from_numpy(visible)
        target = _cubed_columns(p[:, vis])
        target_val = _cubed_columns(yv @ t[vis].T)

        # 2. The projection, full batch, selected on the validation split.
        gen = torch.Generator().manual_seed(seed)
        if init == "text":
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
        report.projection_is_zero_shot = not separate and init == "text" and max_steps == 0
        if report.projection_is_zero_shot:
            report.note = ZERO_SHOT_NOTE
        elif not separate:
            # A random start trains towards the same optimum: the zero-shot scores.
            report.note = ("projection trained towards the zero-shot scores: the concept targets come from the "
                           "backbone's own text tower, whose scores are linear in its features")
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

        # 3. Learnability (the reference's "interpretability" cutoff): keep the concepts the
        # projection reproduces on the validation rows, which no gradient step has seen.
        with torch.no_grad():
            sims = cos3_similarity(xv @ best_w.T, target_val).numpy()
        learnable = sims > cfg.interpretability_cutoff
        report.learnability_rule = (f"validation cos^3 similarity of the projected concept to its target > "
                                    f"{cfg.interpretability_cutoff:g} (the reference's 0.45)")
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
        report.n_kept = len(kept)
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
