"""Label-free presence calibration: P(concept present | its z-scored activation).

Concept detectors differ in reliability and their z-scores are not comparable across
concepts (a z of 1.2 is a sure "water" and a doubtful "a fence"), so an expression is ranked
by probabilities rather than raw activations. Each concept's activations in the index are
modelled, without labels, as a 1-D Gaussian mixture fitted by EM:

* the **top component** (highest mean) is "present";
* the others are "absent". Two absent components (three in all, the default) because the
  absent side of a detector is usually itself bimodal: clearly-not items, and confusable ones
  the detector half-fires on (e.g. other blue things for "water"). With a single absent
  Gaussian, EM often spends the narrow component on the middle of that absent mass.

``P(present | x)`` is the top component's posterior made monotone (its running maximum in x):
Gaussian tails would otherwise make a stronger activation *less* convincing.
Log-probabilities are computed in the log domain, so near-certain items still rank apart.

A concept is **present** in an item when ``P(present) >= PRESENT_PROBABILITY`` (0.5): the
same probabilities decide what an expression matches and how matches rank. Because P is
non-decreasing in z, this amounts to one z cut-off per concept (:meth:`present_from_z`),
usually well above 0 for a rare concept.

Stored as JSON (``calibration.json`` in an index version; no pickle), with a version number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceir_sdk.errors import IncompatibleFileError

CALIBRATION_FORMAT = "ceir-index-calibration"
CALIBRATION_VERSION = 1
CALIBRATION_FILE = "calibration.json"
METHOD = "gaussian-mixture-top-component"
N_COMPONENTS = 3
MIN_ITEMS = 50  # fewer items than this: no fit (ranking falls back to margins)
MAX_FIT_SAMPLES = 100_000  # per concept; a seeded sample above this
PRESENT_PROBABILITY = 0.5  # a concept is present when P(present) >= this (absent below it)
LOG_PRESENT_PROBABILITY = math.log(PRESENT_PROBABILITY)
REFIT_FRACTION = 0.1  # refit automatically once this share of items changed since the fit
SD_FLOOR = 0.05  # in z units; keeps a component from collapsing onto a few equal values
_LOG_2PI = math.log(2 * math.pi)


def _component_loglik(x: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(N, K) log of w_k N(x | mu_k, sd_k)."""
    z = (x[:, None] - mu[None, :]) / sd[None, :]
    return np.log(np.maximum(w, 1e-300))[None, :] - np.log(sd)[None, :] - 0.5 * (z * z + _LOG_2PI)


def _logsumexp(a: np.ndarray, axis: int = 1) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.asarray((np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m).squeeze(axis))


def fit_mixture(x: np.ndarray, n_components: int = N_COMPONENTS, *, max_iter: int = 300, tol: float = 1e-7,
                sd_floor: float = SD_FLOOR) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """EM for a 1-D Gaussian mixture; returns (weights, means, sds, mean log-likelihood),
    components sorted by mean. Deterministic: two percentile-based starts, the better kept
    (one spread evenly, one with a small top component, the usual shape of a rare concept)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    k = int(n_components)
    if k < 2:
        raise ValueError("a presence mixture needs at least 2 components")
    if len(x) < k:
        raise ValueError(f"{len(x)} values cannot fit {k} components")
    spread = max(float(x.std()), sd_floor)
    starts = [np.linspace(10, 95, k), np.concatenate([np.linspace(20, 80, k - 1), [97.0]])]
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for qs in starts:
        mu = np.percentile(x, qs).astype(np.float64)
        sd = np.full(k, max(spread / k, sd_floor))
        w = np.full(k, 1.0 / k)
        prev = -np.inf
        ll = -np.inf
        for _ in range(max_iter):
            comp = _component_loglik(x, w, mu, sd)
            tot = _logsumexp(comp)
            ll = float(tot.mean())
            r = np.exp(comp - tot[:, None])
            nk = r.sum(axis=0) + 1e-12
            w = nk / len(x)
            mu = (r * x[:, None]).sum(axis=0) / nk
            sd = np.maximum(np.sqrt((r * (x[:, None] - mu[None, :]) ** 2).sum(axis=0) / nk), sd_floor)
            if ll - prev < tol:
                break
            prev = ll
        if best is None or ll > best[0]:
            order = np.argsort(mu, kind="stable")
            best = (ll, w[order], mu[order], sd[order])
    assert best is not None
    ll, w, mu, sd = best
    return w, mu, sd, ll


@dataclass
class PresenceCalibration:
    """Per-concept mixtures (C, K arrays); the last component of each concept is "present".

    ``source`` is "index" (fitted on the index's own activations, refitted automatically
    after bulk changes) or "external" (fitted on other activations, e.g. a training split;
    kept until :meth:`ConceptIndex.calibrate` is called again).
    """

    concepts: list[str]
    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    n_fit: int
    source: str = "index"
    changed_since_fit: int = 0
    log_likelihood: np.ndarray | None = None
    _envelopes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, activations: np.ndarray, concepts: Sequence[str], *, n_components: int = N_COMPONENTS,
            source: str = "index", seed: int = 0, max_iter: int = 300, tol: float = 1e-7) -> PresenceCalibration:
        a = np.asarray(activations, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != len(concepts):
            raise ValueError(f"activations of shape {a.shape} for {len(concepts)} concepts")
        if len(a) < MIN_ITEMS:
            raise ValueError(f"{len(a)} items are too few to calibrate concept presence (need {MIN_ITEMS})")
        if len(a) > MAX_FIT_SAMPLES:
            a = a[np.sort(np.random.default_rng(seed).choice(len(a), MAX_FIT_SAMPLES, replace=False))]
        c, k = len(concepts), int(n_components)
        w, mu, sd, ll = np.zeros((c, k)), np.zeros((c, k)), np.zeros((c, k)), np.zeros(c)
        for j in range(c):
            w[j], mu[j], sd[j], ll[j] = fit_mixture(a[:, j], k, max_iter=max_iter, tol=tol)
        return cls(list(concepts), w, mu, sd, len(activations), source, 0, ll)

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[1])

    def stale(self) -> bool:
        """Whether enough items changed since the fit that it should be redone."""
        return self.source == "index" and self.changed_since_fit > REFIT_FRACTION * max(self.n_fit, 1)

    def log_presence(self, values: np.ndarray, columns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """log P(present) and log P(absent), each (N, len(columns)), for ``values`` (N,
        len(columns)) holding the activations of those concept columns."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != len(columns):
            raise ValueError(f"values of shape {v.shape} for {len(columns)} columns")
        lp = np.empty_like(v)
        lq = np.empty_like(v)
        for t, j in enumerate(columns):
            grid, gp, gq = self._envelope(j)
            x = v[:, t]
            comp = _component_loglik(x, self.weights[j], self.means[j], self.sds[j])
            tot = _logsumexp(comp)
            p = comp[:, -1] - tot
            q = _logsumexp(comp[:, :-1]) - tot
            pos = np.searchsorted(grid, x, side="right") - 1  # the last grid point at or below x
            inside = pos >= 0
            at = np.clip(pos, 0, len(grid) - 1)
            lp[:, t] = np.where(inside, np.maximum(p, gp[at]), np.minimum(p, gp[0]))
            lq[:, t] = np.where(inside, np.minimum(q, gq[at]), np.maximum(q, gq[0]))
        return lp, lq

    def _envelope(self, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The monotone envelope of concept j's posterior on a fine grid: the running maximum
        of log P(present) (running minimum of log P(absent)) from the left. Gaussian tails
        and narrow middle components would otherwise make P(present) fall somewhere as the
        activation rises; a detector firing harder should never lower the belief."""
        cache = self._envelopes
        if j not in cache:
            w, mu, sd = self.weights[j], self.means[j], self.sds[j]
            grid = np.linspace(float((mu - 8 * sd).min()), float((mu + 8 * sd).max()), 4096)
            comp = _component_loglik(grid, w, mu, sd)
            tot = _logsumexp(comp)
            cache[j] = (grid, np.maximum.accumulate(comp[:, -1] - tot),
                        np.minimum.accumulate(_logsumexp(comp[:, :-1]) - tot))
        return cache[j]

    def present_from_z(self) -> np.ndarray:
        """Per concept (C,), the lowest z-score at which it counts as present (P(present) >= 0.5),
        located on the envelope grid (about 1/500 of the mixture's range); +inf if never."""
        out = np.full(len(self.concepts), np.inf)
        for j in range(len(self.concepts)):
            # on its own grid points, log_presence is exactly the envelope
            grid, envelope_log_p, _ = self._envelope(j)
            hit = np.flatnonzero(envelope_log_p >= LOG_PRESENT_PROBABILITY)
            if len(hit):
                out[j] = grid[hit[0]]
        return out

    def presence(self, activations: np.ndarray) -> np.ndarray:
        """P(present) for every concept: (N, C)."""
        a = np.asarray(activations, dtype=np.float64)
        lp, _ = self.log_presence(a, range(len(self.concepts)))
        return np.exp(lp).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        return {"method": METHOD, "n_components": self.n_components, "source": self.source, "n_fit": self.n_fit,
                "changed_since_fit": self.changed_since_fit,
                "present_share": {c: round(float(self.weights[j, -1]), 4) for j, c in enumerate(self.concepts)}}

    # -- persistence -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT, "version": CALIBRATION_VERSION, "method": METHOD,
            "n_components": self.n_components, "source": self.source, "n_fit": self.n_fit,
            "changed_since_fit": self.changed_since_fit, "concepts": list(self.concepts),
            "weights": self.weights.tolist(), "means": self.means.tolist(), "sds": self.sds.tolist(),
            "log_likelihood": None if self.log_likelihood is None else self.log_likelihood.tolist(),
        }

    @classmethod
    def from_json(cls, data: Any, concepts: Sequence[str], where: str = "calibration") -> PresenceCalibration:
        """Validate and read; any problem is an IncompatibleFileError that names the way out."""
        way_out = ("load the index with ignore_calibration=True and call index.calibrate() "
                   "(then save) to fit a new one")
        if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
            raise IncompatibleFileError(f"{where} is not a {CALIBRATION_FORMAT!r} file; {way_out}")
        version = data.get("version")
        if not isinstance(version, int) or version < 1 or version > CALIBRATION_VERSION:
            raise IncompatibleFileError(
                f"{where} has calibration version {version}; this ceir-sdk reads version {CALIBRATION_VERSION}. "
                f"Upgrade ceir-sdk, or {way_out}")
        if data.get("method") != METHOD:
            raise IncompatibleFileError(f"{where} uses method {data.get('method')!r}, not {METHOD!r}; {way_out}")
        if list(data.get("concepts", [])) != list(concepts):
            raise IncompatibleFileError(f"{where} calibrates other concepts than the index holds; {way_out}")
        try:
            arrays = [np.asarray(data[key], dtype=np.float64) for key in ("weights", "means", "sds")]
            n_fit, source, changed = int(data["n_fit"]), str(data["source"]), int(data.get("changed_since_fit", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise IncompatibleFileError(f"{where} is damaged ({exc}); {way_out}") from exc
        shape = (len(concepts), int(data.get("n_components", -1)))
        bad = [a.shape for a in arrays if a.shape != shape]
        if bad or shape[1] < 2 or not all(np.isfinite(a).all() for a in arrays) or (arrays[2] <= 0).any() \
                or source not in ("index", "external"):
            raise IncompatibleFileError(f"{where} holds malformed mixtures (expected {shape} arrays); {way_out}")
        ll = data.get("log_likelihood")
        return cls(list(concepts), arrays[0], arrays[1], arrays[2], n_fit, source, changed,
                   None if ll is None else np.asarray(ll, dtype=np.float64))
