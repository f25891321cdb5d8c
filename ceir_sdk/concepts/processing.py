"""Concept set processing: normalise, cap length, drop class names, drop near-duplicates.

Every step returns a :class:`FilterStep` naming each removed concept and why. Defaults are
Label-free CBM's: 30 characters, class similarity 0.85, concept-to-concept similarity 0.9.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from ceir_sdk.concepts.conceptset import Concept, ConceptOrigin, ConceptSet, FilterStep
from ceir_sdk.concepts.similarity import TextSimilarity

MAX_LENGTH = 30
CLASS_SIM_CUTOFF = 0.85
DUPLICATE_SIM_CUTOFF = 0.9

_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.I)
# Characters that are never part of a concept: list markers, quotes, brackets, end punctuation.
_EDGE = " \t\n\r-–—*•·+>\"'`“”‘’()[]{}.,;:!?"
_INNER = re.compile(r"[\"“”`()\[\]{}]|(?<=\w),(?=\s)")


def normalise_phrase(text: str) -> str:
    """Lowercase, single spaces, no stray punctuation at the ends or quotes/brackets inside."""
    text = unicodedata.normalize("NFKC", text)
    text = _INNER.sub(" ", text)
    text = " ".join(text.split()).strip(_EDGE)
    return " ".join(text.lower().split())


def concept_key(text: str) -> str:
    """Comparison key: normalised and without a leading article ("a flower" == "flower")."""
    return _ARTICLE.sub("", normalise_phrase(text))


def _merge(concepts: list[Concept], strip_articles: bool) -> tuple[list[Concept], FilterStep]:
    step = FilterStep(
        "normalise",
        {"strip_articles": strip_articles},
        before=len(concepts),
        after=0,
        notes=["case, whitespace and stray punctuation; duplicates (ignoring a leading article) merged"],
    )
    by_key: dict[str, Concept] = {}
    for concept in concepts:
        phrase = normalise_phrase(concept.phrase)
        key = concept_key(phrase)
        if strip_articles:
            phrase = key
        if not key:
            step.removed.append({"concept": concept.phrase, "reason": "empty after normalisation"})
            continue
        # Remember how the source wrote the phrase when normalisation changed it.
        origins = [
            o if o.raw is not None or concept.phrase == phrase
            else ConceptOrigin(o.kind, o.class_name, o.sample, raw=concept.phrase)
            for o in concept.origins
        ]
        kept = by_key.get(key)
        if kept is None:
            by_key[key] = Concept(phrase, origins)
            continue
        kept.origins.extend(origins)
        step.removed.append(
            {"concept": concept.phrase, "reason": f"duplicate of {kept.phrase!r}", "kept": kept.phrase}
        )
    out = list(by_key.values())
    step.after = len(out)
    return out, step


def _length(concepts: list[Concept], max_length: int) -> tuple[list[Concept], FilterStep]:
    step = FilterStep("length", {"max_length": max_length}, before=len(concepts), after=0)
    out = []
    for concept in concepts:
        if len(concept.phrase) > max_length:
            step.removed.append(
                {"concept": concept.phrase, "reason": f"{len(concept.phrase)} characters > {max_length}"}
            )
        else:
            out.append(concept)
    step.after = len(out)
    return out, step


def _class_names(
    concepts: list[Concept],
    class_names: Sequence[str],
    similarity: TextSimilarity,
    cutoff: float,
    keep: bool,
    add: bool,
) -> tuple[list[Concept], FilterStep]:
    params: dict[str, Any] = {"cutoff": cutoff, "keep_class_names": keep, "add_class_names": add}
    step = FilterStep("class_names", params, before=len(concepts), after=0)
    if keep or add:
        out = list(concepts)
        if add:
            have = {concept_key(c.phrase) for c in out}
            for name in class_names:
                if concept_key(name) not in have:
                    out.append(Concept(normalise_phrase(name), [ConceptOrigin("class_name", name)]))
                    have.add(concept_key(name))
            step.notes.append("class names added on request (label information enters the concept set)")
        else:
            step.notes.append("class names kept on request (label information enters the concept set)")
        step.after = len(out)
        return out, step

    keys = {concept_key(name): name for name in class_names}
    survivors: list[Concept] = []
    for concept in concepts:
        match = keys.get(concept_key(concept.phrase))
        if match is not None:
            step.removed.append({"concept": concept.phrase, "reason": f"is the class name {match!r}"})
        else:
            survivors.append(concept)
    if not similarity.available:
        step.notes.append("similarity check skipped: no text encoder (pass a backbone)")
    elif survivors and class_names:
        params["similarity"] = similarity.describe()
        sims = similarity.matrix(list(class_names), [c.phrase for c in survivors])
        best = sims.argmax(axis=0)
        kept = []
        for j, concept in enumerate(survivors):
            value = float(sims[best[j], j])
            if value >= cutoff:
                step.removed.append({
                    "concept": concept.phrase,
                    "reason": f"similarity {value:.3f} >= {cutoff} to class {class_names[best[j]]!r}",
                })
            else:
                kept.append(concept)
        survivors = kept
    step.after = len(survivors)
    return survivors, step


def _near_duplicates(
    concepts: list[Concept], similarity: TextSimilarity, cutoff: float
) -> tuple[list[Concept], FilterStep]:
    params: dict[str, Any] = {"cutoff": cutoff}
    step = FilterStep("near_duplicates", params, before=len(concepts), after=0)
    if not similarity.available:
        step.notes.append("skipped: no text encoder (pass a backbone)")
        step.after = len(concepts)
        return list(concepts), step
    params["similarity"] = similarity.describe()
    phrases = [c.phrase for c in concepts]
    sims = similarity.matrix(phrases, phrases)
    # Label-free CBM: of a too-similar pair, drop the one with the lower total similarity to
    # all concepts (the less general one); pairs are visited in order, each concept dropped once.
    totals = sims.sum(axis=1)
    dropped: dict[int, tuple[int, float]] = {}
    rows, cols = np.nonzero(np.triu(sims >= cutoff, k=1))
    for i, j in zip(rows.tolist(), cols.tolist()):
        if i in dropped or j in dropped:
            continue
        loser, winner = (i, j) if totals[i] < totals[j] else (j, i)
        dropped[loser] = (winner, float(sims[i, j]))
    for index, (winner, value) in sorted(dropped.items()):
        step.removed.append({
            "concept": phrases[index],
            "reason": f"similarity {value:.3f} >= {cutoff} to {phrases[winner]!r}, which is more general",
            "kept": phrases[winner],
        })
    out = [c for k, c in enumerate(concepts) if k not in dropped]
    step.after = len(out)
    return out, step


def process_concepts(
    concept_set: ConceptSet,
    class_names: Sequence[str] | None = None,
    backbone: Any = None,
    *,
    keep_class_names: bool = False,
    add_class_names: bool = False,
    max_length: int = MAX_LENGTH,
    class_sim_cutoff: float = CLASS_SIM_CUTOFF,
    duplicate_sim_cutoff: float = DUPLICATE_SIM_CUTOFF,
    sentence_model: Any = "auto",
    strip_articles: bool = False,
) -> tuple[ConceptSet, list[FilterStep]]:
    """Run the processing steps in order; returns the new set and one report per step.

    ``class_names`` defaults to the set's own. Without ``backbone`` (a contracts.Backbone or
    a name such as ``"open-clip:ceir-world"``) and without the sentence model, the two
    similarity checks are skipped and the report says so. ``keep_class_names`` leaves class
    names in the set; ``add_class_names`` also adds them, as the CEIR reference code does.
    """
    if isinstance(backbone, str):
        from ceir_sdk.plugins import get_backbone

        backbone = get_backbone(backbone)
    names = list(class_names) if class_names is not None else list(concept_set.class_names)
    similarity = TextSimilarity(backbone, sentence_model=sentence_model)
    concepts = [Concept(c.phrase, list(c.origins)) for c in concept_set.concepts]
    steps: list[FilterStep] = []
    for run in (
        lambda cs: _merge(cs, strip_articles),
        lambda cs: _length(cs, max_length),
        lambda cs: _class_names(cs, names, similarity, class_sim_cutoff, keep_class_names, add_class_names),
        lambda cs: _near_duplicates(cs, similarity, duplicate_sim_cutoff),
    ):
        concepts, step = run(concepts)
        steps.append(step)
    result = concept_set.replace(concepts)
    result.filters = [*concept_set.filters, *steps]
    if not result.class_names:
        result.class_names = names
    return result, steps


def filter_counts(concept_set: ConceptSet, steps: Sequence[FilterStep]) -> dict[str, int]:
    """Concepts left after each step, starting with the raw count."""
    counts = {"raw": steps[0].before if steps else len(concept_set)}
    for step in steps:
        counts[step.name] = step.after
    return counts
