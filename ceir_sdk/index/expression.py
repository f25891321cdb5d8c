"""Concept expressions: ``+striped -grass 2*water "red fur"`` parsed into a small AST.

Grammar (terms separated by whitespace)::

    term    := [ "+" | "-" ] [ NUMBER "*" ] concept
    concept := '"' phrase '"' | "'" phrase "'" | word { word }

``+`` marks a concept the item must show, ``-`` one it must not show, no sign one that
only raises the score. Unquoted multi-word concepts are matched greedily against the
known concept names (longest match wins), and ``_`` may stand for a space.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ceir_sdk.errors import BadInputError

Occur = Literal["must", "should", "must_not"]

_WEIGHT = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\*(.*)$", re.S)
_EXAMPLE = "write e.g. '+striped -grass 2*water' or '+\"red fur\"'"


class UnknownConceptError(BadInputError):
    """A concept expression names a concept the index does not hold."""


@dataclass(frozen=True)
class Term:
    concept: str
    weight: float = 1.0
    occur: Occur = "should"

    def __str__(self) -> str:
        sign = {"must": "+", "must_not": "-", "should": ""}[self.occur]
        weight = "" if self.weight == 1.0 else f"{self.weight:g}*"
        name = f'"{self.concept}"' if " " in self.concept else self.concept
        return f"{sign}{weight}{name}"


@dataclass(frozen=True)
class ConceptQuery:
    """The parsed expression: an ordered tuple of terms, each concept at most once."""

    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return " ".join(str(t) for t in self.terms)

    @property
    def must(self) -> list[Term]:
        return [t for t in self.terms if t.occur == "must"]

    @property
    def must_not(self) -> list[Term]:
        return [t for t in self.terms if t.occur == "must_not"]

    def satisfied_by(self, present: set[str] | frozenset[str]) -> bool:
        """Whether a set of concepts known to be present satisfies the hard constraints."""
        return all(t.concept in present for t in self.must) and not any(
            t.concept in present for t in self.must_not
        )

    def evaluate(
        self, activations: np.ndarray, concepts: Sequence[str], threshold: float | np.ndarray = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (N,) and a boolean mask (N,) of items meeting the must / must-not terms.

        ``activations`` are z-scored (N, C); a concept counts as present above ``threshold``
        (a scalar or one value per concept). The score is a fuzzy AND: the weakest weighted
        margin over the + and - terms (how far above the threshold a + concept is, how far
        below a - concept is), plus the weighted activations of unsigned terms. Ranking by
        the weakest margin puts items that clearly meet every constraint first, where a sum
        would let one very strong concept hide a doubtful one.
        """
        col = {c: i for i, c in enumerate(concepts)}
        thr = np.broadcast_to(np.asarray(threshold, dtype=np.float32), (len(concepts),))
        n = activations.shape[0]
        margin = np.full(n, np.inf, dtype=np.float32)
        bonus = np.zeros(n, dtype=np.float32)
        for t in self.terms:
            j = col[t.concept]
            a = activations[:, j]
            if t.occur == "must":
                margin = np.minimum(margin, t.weight * (a - thr[j]))
            elif t.occur == "must_not":
                margin = np.minimum(margin, t.weight * (thr[j] - a))
            else:
                bonus += t.weight * a
        if np.isinf(margin).all():
            return bonus, np.ones(n, dtype=bool)
        return margin + bonus, margin > 0

    def joint_log_probability(self, log_present: np.ndarray, log_absent: np.ndarray) -> np.ndarray:
        """Scores (N,) from calibrated per-term log-probabilities, both (N, len(terms)) in
        term order: the weighted sum of log P(present) over + and unsigned terms and of
        log P(absent) over - terms (weights act as exponents: 2*c counts c twice). Under
        independent detectors this is the log-probability that the item meets every term,
        so ranking by it puts the items most likely to satisfy the whole expression first,
        with every concept on the same (probability) scale."""
        lp = np.asarray(log_present, dtype=np.float64)
        lq = np.asarray(log_absent, dtype=np.float64)
        if lp.shape != lq.shape or lp.ndim != 2 or lp.shape[1] != len(self.terms):
            raise ValueError(f"need (N, {len(self.terms)}) log-probabilities; got {lp.shape} and {lq.shape}")
        score = np.zeros(lp.shape[0], dtype=np.float64)
        for i, t in enumerate(self.terms):
            score += t.weight * (lq[:, i] if t.occur == "must_not" else lp[:, i])
        return score


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Split into (token, was_quoted) pairs; a sign and weight stay glued to their concept."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        # prefix: optional sign and weight directly before a quote
        m = re.match(r"[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\*)?", text[i:])
        prefix = m.group(0) if m else ""
        j = i + len(prefix)
        if j < n and text[j] in "\"'":
            quote = text[j]
            end = text.find(quote, j + 1)
            if end < 0:
                raise BadInputError(f"unclosed {quote} in concept expression {_q(text)}; {_EXAMPLE}")
            out.append((prefix + text[j + 1 : end], True))
            i = end + 1
            continue
        end = i
        while end < n and not text[end].isspace():
            end += 1
        out.append((text[i:end], False))
        i = end
    return out


_QUOTE_MAX = 80  # characters of user input an error message repeats


def _q(text: str) -> str:
    """``repr(text)``, shortened when long: an error about a 10,000-character expression must not
    repeat it (twice) in one 20,000-character line."""
    if len(text) <= _QUOTE_MAX:
        return repr(text)
    return f"{text[:50]!r}...{text[-20:]!r} ({len(text):,} characters)"


def _split_prefix(token: str, expression: str) -> tuple[Occur, float, str]:
    occur: Occur = "should"
    if token[:1] == "+":
        occur, token = "must", token[1:]
    elif token[:1] == "-":
        occur, token = "must_not", token[1:]
    weight = 1.0
    m = _WEIGHT.match(token)
    if m:
        weight, token = float(m.group(1)), m.group(2)
    elif "*" in token:
        raise BadInputError(f"bad weight in {_q(token)} of {_q(expression)}; a weight is a number: 2*striped")
    if weight <= 0 or not np.isfinite(weight):
        raise BadInputError(f"weight {weight:g} in {_q(expression)} must be a positive number")
    return occur, weight, token


def suggest(name: str, concepts: Sequence[str]) -> str:
    """' Did you mean ...?' for a mistyped concept name, or ''."""
    if len(name) > 4 * _QUOTE_MAX:  # nothing that long is a typo of a concept (and difflib is quadratic)
        return ""
    close = difflib.get_close_matches(name, list(concepts), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def parse_expression(text: str, concepts: Sequence[str] | None = None) -> ConceptQuery:
    """Parse ``text``; with ``concepts`` given, resolve names against them (recommended).

    Raises :class:`BadInputError` for an empty or malformed expression and
    :class:`UnknownConceptError` for a concept that is not in ``concepts``.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadInputError(f"empty concept expression; {_EXAMPLE}")
    known = {c: c for c in concepts} if concepts is not None else None
    if known is not None:
        for c in list(known):
            known.setdefault(c.lower(), c)
    max_words = max((len(c.split()) for c in concepts), default=1) if concepts else 1
    toks = _tokens(text)
    terms: list[Term] = []
    i = 0
    while i < len(toks):
        tok, quoted = toks[i]
        occur, weight, name = _split_prefix(tok, text)
        i += 1
        name = name.strip()
        if not name:
            raise BadInputError(f"a sign or weight without a concept in {_q(text)}; {_EXAMPLE}")
        if known is not None and not quoted:
            # Greedy longest match over following bare words that carry no sign or weight.
            best: tuple[int, str] | None = None
            words = [name]
            for j in range(i, min(len(toks), i + max_words - 1) + 1):
                phrase = " ".join(words).replace("_", " ")
                hit = known.get(phrase) or known.get(phrase.lower())
                if hit is not None:
                    best = (j, hit)
                if j >= len(toks):
                    break
                nxt, nxt_quoted = toks[j]
                if nxt_quoted or nxt[:1] in "+-" or _WEIGHT.match(nxt):
                    break
                words.append(nxt)
            if best is None:
                raise UnknownConceptError(
                    f"unknown concept {_q(name.replace('_', ' '))} in {_q(text)}."
                    f"{suggest(name.replace('_', ' '), list(concepts or []))}"
                    " Quote multi-word concepts and list them with `ceir index info`."
                )
            i, name = best
        elif known is not None:
            hit = known.get(name) or known.get(name.lower())
            if hit is None:
                raise UnknownConceptError(
                    f"unknown concept {_q(name)} in {_q(text)}.{suggest(name, list(concepts or []))}"
                    " List the index's concepts with `ceir index info`."
                )
            name = hit
        terms.append(Term(name, weight, occur))
    seen: dict[str, Term] = {}
    for t in terms:
        if t.concept in seen:
            prev = seen[t.concept]
            raise BadInputError(
                f"concept {_q(t.concept)} appears twice in {_q(text)} ({prev} and {t}); name each concept once"
            )
        seen[t.concept] = t
    if all(t.occur == "must_not" for t in terms):
        raise BadInputError(
            f"{_q(text)} only excludes concepts; add at least one concept to look for, e.g. "
            f"'+water {text if len(text) <= _QUOTE_MAX else '...'}'"
        )
    return ConceptQuery(tuple(terms))
