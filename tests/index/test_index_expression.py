from __future__ import annotations

import numpy as np
import pytest

from ceir_sdk.errors import BadInputError
from ceir_sdk.index import ConceptQuery, Term, UnknownConceptError, parse_expression

CONCEPTS = ["striped", "water", "grass", "red fur", "red", "snow covered ground"]


def test_signs_weights_and_quotes() -> None:
    q = parse_expression('+striped -grass 2*water +0.5*"red fur"', CONCEPTS)
    assert q.terms == (
        Term("striped", 1.0, "must"),
        Term("grass", 1.0, "must_not"),
        Term("water", 2.0, "should"),
        Term("red fur", 0.5, "must"),
    )
    assert parse_expression(str(q), CONCEPTS) == q  # printing round-trips


def test_unquoted_multiword_concepts_match_longest() -> None:
    q = parse_expression("+red fur -snow covered ground", CONCEPTS)
    assert [t.concept for t in q.terms] == ["red fur", "snow covered ground"]
    q = parse_expression("+red -water", CONCEPTS)
    assert [t.concept for t in q.terms] == ["red", "water"]
    assert parse_expression("+snow_covered_ground", CONCEPTS).terms[0].concept == "snow covered ground"
    assert parse_expression("+Striped", CONCEPTS).terms[0].concept == "striped"


@pytest.mark.parametrize("text", ["", "   ", "+", "-  ", "2*"])
def test_empty_or_dangling_is_a_clear_error(text: str) -> None:
    with pytest.raises(BadInputError, match="concept"):
        parse_expression(text, CONCEPTS)


def test_unknown_concept_suggests_close_names() -> None:
    with pytest.raises(UnknownConceptError, match=r"unknown concept 'stripes'.*'striped'"):
        parse_expression("+stripes -grass", CONCEPTS)
    with pytest.raises(UnknownConceptError, match="unknown concept 'zebra crossing'"):
        parse_expression('+"zebra crossing"', CONCEPTS)


@pytest.mark.parametrize(("text", "match"), [
    ("x*striped", "weight"),
    ("0*striped", "positive"),
    ("+striped -striped", "twice"),
    ("-grass -water", "only excludes"),
    ('+"red fur', "unclosed"),
])
def test_malformed_expressions(text: str, match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        parse_expression(text, CONCEPTS)


def test_evaluate_scores_and_masks() -> None:
    acts = np.array([[2.0, 0.0, -1.0], [1.0, 0.0, 1.0], [-1.0, 3.0, -2.0]], dtype=np.float32)
    q = parse_expression("+a -c 2*b", ["a", "b", "c"])
    score, mask = q.evaluate(acts, ["a", "b", "c"])
    assert mask.tolist() == [True, False, False]
    # weakest margin of the + and - terms, plus the weighted unsigned term
    np.testing.assert_allclose(score, [min(2, 1) + 0, min(1, -1) + 0, min(-1, 2) + 6])
    only_soft = parse_expression("a 2*b", ["a", "b", "c"])
    score, mask = only_soft.evaluate(acts, ["a", "b", "c"])
    assert mask.all()
    np.testing.assert_allclose(score, [2, 1, 5])
    assert isinstance(q, ConceptQuery) and q.satisfied_by({"a"}) and not q.satisfied_by({"a", "c"})
