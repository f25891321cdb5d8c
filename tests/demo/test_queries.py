"""The demo's query picker on concept sets other than the world's own lists.

A real ConceptIndex (FAISS) over a drawn world's test split: each item's concept activations
are its true concepts (plus noise), its latent a fixed projection of them, and texts are encoded
by the concepts they name. That is enough for the picker's three queries to run for real.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from ceir_sdk.demo.queries import run_queries
from ceir_sdk.index import ConceptIndex, FunctionEncoder
from ceir_sdk.worlds import World
from ceir_sdk.worlds.descriptions import description_parts, expand_truth


@pytest.fixture(scope="module")
def world_split() -> tuple[Any, list[frozenset[str]], np.ndarray]:
    world = World("world10", image_size=32, seed=0)
    truths: list[frozenset[str]] = []
    labels = []
    for batch in world.batches(400, split="test", batch_size=400):
        truths += [frozenset(c) for c in batch.concepts]
        labels.append(np.asarray(batch.labels))
    parts = description_parts(world)
    return world, [expand_truth(t, parts) for t in truths], np.concatenate(labels)


def _index(concepts: Sequence[str], truths: Sequence[frozenset[str]]) -> ConceptIndex:
    rng = np.random.default_rng(0)
    acts = np.array([[1.0 if c in t else 0.0 for c in concepts] for t in truths], np.float32)
    acts += rng.normal(0, 0.05, acts.shape).astype(np.float32)
    projection = rng.normal(size=(len(concepts), 16)).astype(np.float32)

    def texts(items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        a = np.array([[1.0 if c in text else 0.0 for c in concepts] for text in items], np.float32)
        return a, a @ projection

    encoder = FunctionEncoder(concepts, texts=texts, concept_vector=lambda a: np.asarray(a) @ projection)
    return ConceptIndex.build(acts @ projection, acts, concepts, encoder=encoder, progress=False, tune=False)


def _run(world: Any, truths: list[frozenset[str]], labels: np.ndarray, concepts: list[str]) -> dict[str, Any]:
    return run_queries(_index(concepts, truths), concepts, list(world.class_names), labels, truths,
                       world.oracle.families())


def test_hypernyms_only_build_queries_from_distinct_concepts(world_split: Any) -> None:
    """A hypernym list (no colour, pattern or scene words) once gave '+an animal +an animal -an animal'."""
    world, truths, labels = world_split
    concepts = world.oracle.families()["superclass"]
    out = _run(world, truths, labels, concepts)
    expression = out["concept_expression"]["query"]
    terms = [term.strip() for term in expression.replace("+", "|").replace(" -", "|").split("|") if term.strip()]
    assert len(terms) >= 2 and len(terms) == len(set(terms)) and set(terms) <= set(concepts), expression
    text = out["text"]["query"]
    assert out["text"]["share_with_both_concepts"] >= 0.0 and text
    edit = out["edited_example"]
    assert edit["edit"]["remove"] != edit["edit"]["add"]
    assert set(edit["edit"]["remove"] + edit["edit"]["add"]) <= set(concepts)
    assert edit["edit"]["phrases_removed"], "the swapped concept must be removed from the item"


def test_colours_alone_build_every_query(world_split: Any) -> None:
    world, truths, labels = world_split
    concepts = world.oracle.families()["colour"] + ["a tree", "a house"]
    out = _run(world, truths, labels, concepts)
    text = out["text"]["query"]
    assert any(text == f"{a} {b}" for a in concepts for b in concepts if a != b), text
    assert out["concept_expression"]["query"].count("+") == 2
    assert out["edited_example"]["edit"]["remove"][0] in world.oracle.families()["colour"]


def test_a_concept_set_the_world_cannot_score_says_which_queries_it_cannot_build(world_split: Any) -> None:
    world, truths, labels = world_split
    concepts = ["a four-legged creature", "something shiny", "a thing with wheels"]
    out = _run(world, truths, labels, concepts)
    for name in ("text", "concept_expression", "edited_example"):
        reason = out[name].get("skipped")
        assert reason, (name, out[name])
        assert "true concepts" in reason or "world" in reason, reason


def test_the_world_own_lists_still_pick_colour_pattern_and_scene(world_split: Any) -> None:
    world, truths, labels = world_split
    families = world.oracle.families()
    concepts = sorted({c for members in families.values() for c in members})
    out = _run(world, truths, labels, concepts)
    colour, pattern = out["text"]["query"].split(" ")
    assert colour in families["colour"] and pattern in families["pattern"]
    scene = out["concept_expression"]["query"].rsplit(" -", 1)[1]
    assert scene in families["scene"]
    assert out["edited_example"]["edit"]["remove"][0] in families["colour"]


def test_skipped_queries_are_said_in_the_summary_and_the_report(world_split: Any) -> None:
    from ceir_sdk.demo.render import build_report
    from ceir_sdk.demo.summary import summary_lines

    world, truths, labels = world_split
    queries = _run(world, truths, labels, ["a four-legged creature", "something shiny", "red"])
    metrics = {"nmi_mean": 0.5, "nmi_std": 0.0, "acc_mean": 0.5, "acc_std": 0.0, "ari_mean": 0.3, "ari_std": 0.0,
               "seeds": 1}
    results = {"domain": "world10", "n_test": len(truths), "backbone": {"name": "test"},
               "evaluation": {"metrics": {"ceir": metrics}, "clusters": [], "explanations": []}, "queries": queries}
    lines = "\n".join(summary_lines(results))
    assert "skipped: the text query needs two of the model's concepts" in lines
    html = build_report(results, {}).render()
    assert "Not run: the edited example needs two of the model" in html.replace("&#x27;", "'")
