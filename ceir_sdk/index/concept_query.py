"""Concept queries over stored activations: which items match an expression, how they rank, and edits.

Pure numpy over the (N, C) z-scored activations; :class:`ceir_sdk.index.ConceptIndex` holds the
data and the lock, picks the rows a filter allows, and turns the chosen rows into hits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ceir_sdk.errors import BadInputError
from ceir_sdk.index.calibration import LOG_PRESENT_PROBABILITY, PresenceCalibration
from ceir_sdk.index.expression import ConceptQuery, UnknownConceptError, suggest

RANKINGS = ("calibrated", "margin")
# What "present" means for matching: "calibrated" = P(present) >= 0.5 under the index's
# presence calibration (z threshold when there is none); "threshold" = z above the threshold.
PRESENCE_RULES = ("calibrated", "threshold")


def check_rule(rule: object) -> str:
    if rule not in PRESENCE_RULES:
        raise BadInputError(f"presence rule {rule!r} is not one of {', '.join(PRESENCE_RULES)}")
    return str(rule)


@dataclass
class ConceptScores:
    """Per item (N rows) and term (T columns): what a concept expression makes of each item."""

    z: np.ndarray  # (N, T) z-scores of the terms' concepts
    lp: np.ndarray | None  # (N, T) log P(present), None without a calibration
    present: np.ndarray  # (N, T) the term's concept counts as present under the rule used
    met: np.ndarray  # (N, T) the term is met (always True for unsigned terms)
    matched: np.ndarray  # (N,) every signed term met
    score: np.ndarray  # (N,) ranking score, higher first
    margin: np.ndarray  # (N,) weakest margin over the z threshold: ties in score break on it
    used: str  # the presence rule that decided: "calibrated" or "threshold"


def score_concepts(query: ConceptQuery, acts: np.ndarray, concepts: Sequence[str], *, threshold: float,
                   rule: str, ranking: str, calibration: Callable[[bool], PresenceCalibration | None]) -> ConceptScores:
    """Score every item for ``query`` (see ``ConceptIndex.search_concepts`` for the rules).

    ``calibration(needed)`` gives the presence calibration: fitted on demand when ``needed``
    (a calibrated rule or ranking), otherwise whatever the index already has.
    """
    thr_arr = np.broadcast_to(np.asarray(threshold, dtype=np.float32), (len(concepts),))
    margin, _ = query.evaluate(acts, list(concepts), thr_arr)
    col = {c: j for j, c in enumerate(concepts)}
    cols = [col[t.concept] for t in query.terms]
    z = acts[:, cols]
    cal = calibration(ranking == "calibrated" or rule == "calibrated")
    lp = lq = None
    if cal is not None:
        lp, lq = cal.log_presence(z, cols)
    used = "calibrated" if rule == "calibrated" and lp is not None else "threshold"
    # (N, T): the concept of each term present, and each term met; one rule for both
    if used == "calibrated":
        assert lp is not None
        present: np.ndarray = np.asarray(lp >= LOG_PRESENT_PROBABILITY)
        absent = ~present
    else:
        present = np.asarray(z > thr_arr[cols])
        absent = np.asarray(z < thr_arr[cols])
    met = np.ones_like(present)
    for i, t in enumerate(query.terms):
        if t.occur == "must":
            met[:, i] = present[:, i]
        elif t.occur == "must_not":
            met[:, i] = absent[:, i]
    matched = np.asarray(met.all(axis=1), dtype=bool)
    if ranking == "calibrated" and lp is not None and lq is not None:
        score = query.joint_log_probability(lp, lq)
    else:
        score = margin.astype(np.float64)
    return ConceptScores(z, lp, present, met, matched, score, margin, used)


def top_rows(scores: ConceptScores, mask: np.ndarray, k: int) -> np.ndarray:
    """The k best rows under ``mask``; ties in the score (e.g. items all near-certain) break on the margin."""
    rows = np.flatnonzero(mask)
    return rows[np.lexsort((-scores.margin[rows], -scores.score[rows]))[:k]]


def term_report(query: ConceptQuery, scores: ConceptScores, row: int) -> list[dict[str, object]]:
    """Per term of one item: z-score, P(present), present, met (None for unsigned terms)."""
    return [{"term": str(t), "concept": t.concept, "z": round(float(scores.z[row, i]), 4),
             "p_present": None if scores.lp is None else round(float(np.exp(scores.lp[row, i])), 4),
             "present": bool(scores.present[row, i]),
             "met": None if t.occur == "should" else bool(scores.met[row, i])}
            for i, t in enumerate(query.terms)]


def concept_levels(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-concept 'absent' and 'present' levels: the 10th and 90th percentiles of the activations
    (of a fixed 100,000-item sample on larger indexes)."""
    if len(acts) == 0:
        raise BadInputError("the index is empty")
    sample = acts
    if len(sample) > 100_000:
        sample = sample[np.random.default_rng(0).choice(len(sample), 100_000, replace=False)]
    lo, hi = np.percentile(sample, [10, 90], axis=0)
    return lo.astype(np.float32), hi.astype(np.float32)


def edit_activations(activations: np.ndarray, concepts: Sequence[str],
                     levels: Callable[[], tuple[np.ndarray, np.ndarray]], *,
                     add: Sequence[str] = (), remove: Sequence[str] = (),
                     set_values: Mapping[str, float] | None = None) -> np.ndarray:
    """CEIR label manipulation: raise added concepts to at least their 'present' level, lower
    removed ones to at most their 'absent' level, or set exact z-scores. ``levels()`` gives the
    (absent, present) levels, asked for only once the edit is known to be well formed."""
    a = np.array(activations, dtype=np.float32).reshape(-1)
    if a.shape[0] != len(concepts):
        raise BadInputError(f"activations have {a.shape[0]} values; the index has {len(concepts)} concepts")
    if not (add or remove or set_values):
        raise BadInputError("no concept edit given; name concepts to add, remove or set")
    col = {c: j for j, c in enumerate(concepts)}
    lo, hi = levels()
    for name in [*add, *remove, *(set_values or {})]:
        if name not in col:
            raise UnknownConceptError(
                f"unknown concept {name!r} in the edit.{suggest(name, list(concepts))} `ceir index info` lists "
                "the index's concepts")
    both = set(add) & set(remove)
    if both:
        raise BadInputError(f"concepts both added and removed: {sorted(both)}")
    for name in add:
        a[col[name]] = max(a[col[name]], hi[col[name]])
    for name in remove:
        a[col[name]] = min(a[col[name]], lo[col[name]])
    for name, v in (set_values or {}).items():
        a[col[name]] = float(v)
    return a
