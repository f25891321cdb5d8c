from __future__ import annotations

import pytest

from ceir_sdk.concepts import parse_reply


@pytest.mark.parametrize(
    ("reply", "form", "concepts"),
    [
        ("- red shell\n- black dots\n* six legs", "bullets", ["red shell", "black dots", "six legs"]),
        ("-bright orange color\n-a small, round body", "bullets", ["bright orange color", "a small, round body"]),
        ("1. red shell\n2) black dots\n3. six legs.", "bullets", ["red shell", "black dots", "six legs"]),
        ("• yellow\n• striped", "bullets", ["yellow", "striped"]),
        ("Here are the features:\n\n- red\n- round", "bullets", ["red", "round"]),
        ("**Features**\n1. **Red** shell\n2. black dots", "bullets", ["Red shell", "black dots"]),
        ("insect\nanimal\n", "bullets", ["insect", "animal"]),
        ('["red", "round"]', "json", ["red", "round"]),
        ('```json\n{"concepts": ["red", "round"]}\n```', "json", ["red", "round"]),
        ('{"features": ["red"], "around": ["grass"]}', "json", ["red", "grass"]),
        ("A ladybug has: a red shell, black dots and six legs.", "prose", ["a red shell", "black dots", "six legs"]),
        ("I'm sorry, but I can't help with that.", "refusal", []),
        ("As an AI, I cannot see images.", "refusal", []),
        ("", "empty", []),
        ("   \n ", "empty", []),
        (None, "empty", []),
    ],
)
def test_parse_reply_forms(reply: str | None, form: str, concepts: list[str]) -> None:
    parsed = parse_reply(reply)
    assert parsed.form == form
    assert parsed.concepts == concepts
    if not concepts:
        assert parsed.note  # every empty result says why
