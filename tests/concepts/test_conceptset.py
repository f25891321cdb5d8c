from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ceir_sdk.concepts import Concept, ConceptOrigin, ConceptSet, FilterStep
from ceir_sdk.errors import BadInputError, IncompatibleFileError


def _sample_set() -> ConceptSet:
    return ConceptSet(
        [
            Concept("striped fur", [ConceptOrigin("features", "zebra", 0), ConceptOrigin("features", "bee", 1)]),
            Concept("an insect", [ConceptOrigin("superclasses", "bee", 0, raw="An insect.")]),
        ],
        source="openai:gpt-4.1",
        class_names=["zebra", "bee"],
        model="gpt-4.1",
        prompts_hash="ab" * 32,
        filters=[FilterStep("length", {"max_length": 30}, 3, 2, [{"concept": "x" * 40, "reason": "too long"}])],
        generation={"n_samples": 2},
    )


def test_roundtrip_keeps_provenance(tmp_path: Path) -> None:
    original = _sample_set()
    path = original.save(tmp_path / "c.json")
    data = json.loads(path.read_text())
    assert data["format"] == "ceir-concepts" and data["format_version"] == 1
    loaded = ConceptSet.load(path)
    assert loaded.phrases == ["striped fur", "an insect"]
    assert loaded.origins_of("striped fur")[1] == ConceptOrigin("features", "bee", 1)
    assert loaded.origins_of("an insect")[0].raw == "An insect."
    assert loaded.filters[0].removed[0]["reason"] == "too long"
    assert loaded.to_dict() == original.to_dict()
    assert loaded.counts_by_kind() == {"features": 1, "superclasses": 1}


def test_duplicate_phrases_are_rejected() -> None:
    with pytest.raises(BadInputError, match="appears twice"):
        ConceptSet([Concept("a"), Concept("a")], source="x")


def test_from_phrases_merges_repeats() -> None:
    cs = ConceptSet.from_phrases(["red", " red ", "blue", ""])
    assert cs.phrases == ["red", "blue"]
    assert len(cs.origins_of("red")) == 2
    with pytest.raises(BadInputError, match="strings"):
        ConceptSet.from_phrases(["red", 3])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "not valid JSON"),
        (json.dumps(["a", "b"]), "static concept source"),
        (json.dumps({"format": "ceir-concepts", "format_version": 99, "concepts": []}), "upgrade"),
        (json.dumps({"format": "ceir-concepts", "format_version": 1}), "damaged"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(IncompatibleFileError, match=match):
        ConceptSet.load(path)


def test_load_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="ceir concepts generate"):
        ConceptSet.load(tmp_path / "nope.json")


def test_interrupted_save_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.json"
    ConceptSet.from_phrases(["old"]).save(path)
    before = path.read_bytes()

    def boom(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        _sample_set().save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]  # no temp file left


def test_a_concept_set_feeds_the_model_as_phrases() -> None:
    from ceir_sdk.model.ceir import clean_concepts

    cs = _sample_set()
    assert clean_concepts(cs) == cs.phrases
    assert [str(c) for c in cs.concepts] == cs.phrases
