from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ceir_sdk import get_concept_source
from ceir_sdk.concepts import ConceptSet
from ceir_sdk.contracts import ConceptSource
from ceir_sdk.errors import BadInputError
from ceir_sdk.worlds import World
from ceir_sdk.worlds.descriptions import description_parts


def test_text_file(first_party_host: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("# my concepts\nstriped fur\n\nwings  # inline comment\nstriped fur\n")
    source = get_concept_source(f"static:{path}")
    assert isinstance(source, ConceptSource)
    cs = source.generate(["zebra"])
    assert cs.phrases == ["striped fur", "wings"] and cs.class_names == ["zebra"]
    assert cs.source == f"static:{path}"


@pytest.mark.parametrize(
    ("data", "phrases", "kinds"),
    [
        (["a", "b"], ["a", "b"], {"file"}),
        ({"concepts": ["a"]}, ["a"], {"file"}),
        ({"zebra": ["stripes"], "bee": ["wings", "stripes"]}, ["stripes", "wings"], {"file"}),
        ({"zebra": {"features": ["stripes"], "around": ["grass"]}}, ["stripes", "grass"], {"features", "around"}),
    ],
)
def test_json_files(first_party_host: Any, tmp_path: Path, data: Any, phrases: list[str], kinds: set[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    cs = get_concept_source(f"static:{path}").generate([])
    assert cs.phrases == phrases
    assert {o.kind for c in cs.concepts for o in c.origins} == kinds


def test_saved_concept_set_keeps_its_provenance(first_party_host: Any, tmp_path: Path) -> None:
    original = ConceptSet.from_phrases(["a", "b"], source="openai:gpt-4.1")
    original.prompts_hash = "f" * 64
    path = original.save(tmp_path / "set.json")
    cs = get_concept_source("static", path=str(path)).generate(["x"])
    assert cs.source == "openai:gpt-4.1" and cs.prompts_hash == "f" * 64 and cs.class_names == ["x"]


def test_python_list(first_party_host: Any) -> None:
    cs = get_concept_source("static", concepts=["red", "blue", "red"]).generate(["ball"])
    assert cs.phrases == ["red", "blue"] and cs.source == "static:list"


def test_world_oracle(first_party_host: Any) -> None:
    cs = get_concept_source("static:world10").generate([])
    world = World("world10")
    assert cs.class_names == world.class_names
    expected = {c for n in world.class_names for k in world.oracle.class_concepts(n).values() for c in k}
    descriptions = set(description_parts(world))
    assert descriptions and not descriptions & expected
    assert set(cs.phrases) == expected | descriptions
    atomic = get_concept_source("static:world10", descriptive=False).generate([])
    assert set(atomic.phrases) == expected
    assert {o.class_name for o in cs.origins_of("an insect")} == {"ladybug", "bee"}
    # a description is offered only for a class whose preferred attributes it combines
    for phrase, parts in description_parts(world).items():
        for origin in cs.origins_of(phrase):
            groups = world.oracle.class_concepts(origin.class_name)
            assert parts <= set(groups["features"]) | set(groups["superclasses"]), phrase
    sub = get_concept_source("static:world100_20").generate(["ladybug"])
    assert "an insect" in sub.phrases


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        ("static", {}, "needs a file"),
        ("static:missing.txt", {}, "no concept file"),
        ("static:world11", {}, "unknown world"),
        ("static", {"concepts": "red"}, "list of phrases"),
        ("static", {"concepts": ["a"], "temperature": 0.3},
         r"does not take the option\(s\) temperature; it takes: concepts, descriptive, path"),
        ("static", {"concepts": []}, "no concepts"),
    ],
)
def test_bad_static_inputs(first_party_host: Any, spec: str, options: dict, match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        get_concept_source(spec, **options)


def test_unknown_world_class_is_named(first_party_host: Any) -> None:
    with pytest.raises(BadInputError, match="unicorn"):
        get_concept_source("static:world10").generate(["unicorn"])


def test_bad_json_file(first_party_host: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{oops")
    with pytest.raises(BadInputError, match="not valid JSON"):
        get_concept_source(f"static:{path}")
