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
import os
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
# Rows fitted (a seeded sample above this). Sized for the statistical need: a concept present
# in 1% of items still puts about 650 sampled items in its "present" component, whose mean is
# then known to about 0.04 of its spread; more rows cost only the histogram, never the EM.
MAX_FIT_SAMPLES = 65_536
# EM runs on a per-concept histogram of this many equal-width bins (bin means and second
# moments, so only responsibilities are approximated), so its cost is bins x concepts per
# iteration whatever the index size.
FIT_BINS = 256
PRESENT_PROBABILITY = 0.5  # a concept is present when P(present) >= this (absent below it)
LOG_PRESENT_PROBABILITY = math.log(PRESENT_PROBABILITY)
STALE_FRACTION = 0.1  # the fit counts as stale once this share of items changed since it
REFIT_FRACTION = STALE_FRACTION  # the former name
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


def _histograms(a: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``a`` (N, C), over ``bins`` equal-width bins of its range: each bin's count,
    mean and mean square (C, B). EM on bin means weighted by counts, with the bins' own second
    moments in the variance update, differs from EM on the raw values only in evaluating each
    value's responsibilities at its bin's mean (empty bins: weight 0)."""
    c = a.shape[1]
    lo, hi = a.min(axis=0), a.max(axis=0)
    width = np.maximum(hi - lo, 1e-9) / bins
    idx = np.floor((a - lo) / width).astype(np.int64)
    np.clip(idx, 0, bins - 1, out=idx)
    idx += np.arange(c, dtype=np.int64) * bins
    flat = idx.ravel()
    counts = np.bincount(flat, minlength=c * bins).reshape(c, bins).astype(np.float64)
    sums = np.bincount(flat, weights=a.ravel(), minlength=c * bins).reshape(c, bins)
    squares = np.bincount(flat, weights=(a * a).ravel(), minlength=c * bins).reshape(c, bins)
    filled = np.maximum(counts, 1.0)
    centres = lo[:, None] + (np.arange(bins) + 0.5)[None, :] * width[:, None]
    means = np.where(counts > 0, sums / filled, centres)
    return counts, means, np.where(counts > 0, squares / filled, centres * centres)


def _em_rows(x: np.ndarray, x2: np.ndarray, counts: np.ndarray | None, n: float, w: np.ndarray, mu: np.ndarray,
             sd: np.ndarray, max_iter: int, tol: float, sd_floor: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM for R independent 1-D mixtures at once: row r of ``x`` (R, M) holds its values (or bin
    means, weighted by ``counts``), ``x2`` their squares (or the bins' mean squares); ``w``,
    ``mu``, ``sd`` (R, K) are the starts. Each row follows
    exactly the steps :func:`fit_mixture` takes (same update, same stopping rule, same returned
    log-likelihood, the one before the last update) and leaves the batch when it stops.
    Returns (weights, means, sds) (R, K) and the mean log-likelihood (R,)."""
    r_all = x.shape[0]
    out_w, out_mu, out_sd, out_ll = w.copy(), mu.copy(), sd.copy(), np.full(r_all, -np.inf)
    active = np.arange(r_all)
    xa, xa2, ca = x, x2, counts
    # components first, (K, A, M): every step below is a handful of whole-array operations
    w, mu, sd = w.T.copy(), mu.T.copy(), sd.T.copy()
    prev = np.full(r_all, -np.inf)
    for it in range(max_iter):
        const = np.log(np.maximum(w, 1e-300)) - np.log(sd) - 0.5 * _LOG_2PI
        comp = xa[None, :, :] - mu[:, :, None]
        comp /= sd[:, :, None]
        comp *= comp
        comp *= -0.5
        comp += const[:, :, None]
        top = comp.max(axis=0)
        comp -= top
        np.exp(comp, out=comp)
        total = comp.sum(axis=0)
        log_total = np.log(total) + top
        if ca is None:
            ll = log_total.mean(axis=1)
            comp /= total
        else:
            ll = (ca * log_total).sum(axis=1) / n
            comp *= ca / total
        nk = comp.sum(axis=2) + 1e-12
        w = nk / n
        mu = np.einsum("kam,am->ka", comp, xa) / nk
        var = np.einsum("kam,am->ka", comp, xa2) / nk - mu * mu
        sd = np.maximum(np.sqrt(np.maximum(var, 0.0)), sd_floor)
        stop = (ll - prev < tol) | (it == max_iter - 1)
        prev = ll
        if stop.any():
            rows = active[stop]
            out_w[rows], out_mu[rows], out_sd[rows], out_ll[rows] = w[:, stop].T, mu[:, stop].T, sd[:, stop].T, ll[stop]
            keep = ~stop
            if not keep.any():
                break
            active, prev = active[keep], prev[keep]
            w, mu, sd = w[:, keep], mu[:, keep], sd[:, keep]
            xa, xa2 = xa[keep], xa2[keep]
            ca = None if ca is None else ca[keep]
    return out_w, out_mu, out_sd, out_ll


def fit_mixtures(a: np.ndarray, n_components: int = N_COMPONENTS, *, max_iter: int = 300, tol: float = 1e-7,
                 sd_floor: float = SD_FLOOR, bins: int | None = FIT_BINS, threads: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`fit_mixture` for every column of ``a`` (N, C) at once: (weights, means, sds) (C, K),
    components sorted by mean, and the mean log-likelihood (C,).

    The same two deterministic starts and the same EM steps, vectorised over concepts (one
    batch of 2C rows) instead of a Python loop per concept. With ``bins`` (and N > bins), EM
    runs on each column's histogram (bin means weighted by counts, the bins' second moments in
    the variances: see :func:`_histograms`), so an iteration costs C x bins whatever N is. Most concepts of real
    detectors do not meet the 1e-7 tolerance within ``max_iter`` = 300 iterations: like
    fit_mixture, this returns where EM stands then. Columns are split over up to ``threads``
    threads (numpy releases the GIL inside each whole-array step).
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected (N, C) values, got shape {a.shape}")
    n, c = a.shape
    k = int(n_components)
    if k < 2:
        raise ValueError("a presence mixture needs at least 2 components")
    if n < k:
        raise ValueError(f"{n} values cannot fit {k} components")
    spread = np.maximum(a.std(axis=0), sd_floor)
    starts = [np.linspace(10, 95, k), np.concatenate([np.linspace(20, 80, k - 1), [97.0]])]
    mu0 = np.concatenate([np.percentile(a, qs, axis=0).T for qs in starts])  # (2C, K): start-major
    sd0 = np.repeat(np.tile(np.maximum(spread / k, sd_floor), len(starts))[:, None], k, axis=1)
    w0 = np.full((len(starts) * c, k), 1.0 / k)
    if bins is not None and n > bins:
        counts, means, squares = _histograms(a, int(bins))
        x, x2, cnt = np.tile(means, (2, 1)), np.tile(squares, (2, 1)), np.tile(counts, (2, 1))
    else:
        x = np.ascontiguousarray(np.tile(a.T, (2, 1)))
        x2, cnt = x * x, None
    n_threads = max(1, min(threads or (os.cpu_count() or 1), 8, c // 16 or 1))
    parts = np.array_split(np.arange(c), n_threads)

    def run(cols: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = np.concatenate([cols, cols + c])  # both starts of these concepts
        return _em_rows(x[rows], x2[rows], None if cnt is None else cnt[rows], float(n), w0[rows], mu0[rows],
                        sd0[rows], max_iter, tol, sd_floor)

    if n_threads == 1:
        results = [run(parts[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_threads) as pool:
            results = list(pool.map(run, parts))
    w, mu, sd, ll = (np.zeros((2 * c, k)), np.zeros((2 * c, k)), np.zeros((2 * c, k)), np.zeros(2 * c))
    for cols, (rw, rmu, rsd, rll) in zip(parts, results):
        rows = np.concatenate([cols, cols + c])
        w[rows], mu[rows], sd[rows], ll[rows] = rw, rmu, rsd, rll
    # fit_mixture keeps the first start unless the second is strictly better
    rows = np.where(ll[c:] > ll[:c], c, 0) + np.arange(c)
    w, mu, sd, ll = w[rows], mu[rows], sd[rows], ll[rows]
    order = np.argsort(mu, axis=1, kind="stable")
    return (np.take_along_axis(w, order, axis=1), np.take_along_axis(mu, order, axis=1),
            np.take_along_axis(sd, order, axis=1), ll)


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
            source: str = "index", seed: int = 0, max_iter: int = 300, tol: float = 1e-7,
            bins: int | None = FIT_BINS) -> PresenceCalibration:
        """Fit every concept's mixture at once (:func:`fit_mixtures`) on at most
        ``MAX_FIT_SAMPLES`` seeded rows; ``bins=None`` runs EM on the raw values instead."""
        a = np.asarray(activations)
        if a.ndim != 2 or a.shape[1] != len(concepts):
            raise ValueError(f"activations of shape {a.shape} for {len(concepts)} concepts")
        if len(a) < MIN_ITEMS:
            raise ValueError(f"{len(a)} items are too few to calibrate concept presence (need {MIN_ITEMS})")
        if len(a) > MAX_FIT_SAMPLES:  # sample before converting: a float64 copy of 1M x 200 is 1.6 GB
            a = a[np.sort(np.random.default_rng(seed).choice(len(a), MAX_FIT_SAMPLES, replace=False))]
        w, mu, sd, ll = fit_mixtures(np.asarray(a, dtype=np.float64), int(n_components), max_iter=max_iter,
                                     tol=tol, bins=bins)
        return cls(list(concepts), w, mu, sd, len(activations), source, 0, ll)

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[1])

    def stale(self) -> bool:
        """Whether enough items changed since the fit (over ``STALE_FRACTION`` of those it was
        fitted on) that it should be redone. Nothing refits by itself: ``index.calibrate()``
        or ``ceir index calibrate`` does."""
        return self.source == "index" and self.changed_since_fit > STALE_FRACTION * max(self.n_fit, 1)

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
                "changed_since_fit": self.changed_since_fit, "stale": self.stale(),
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
