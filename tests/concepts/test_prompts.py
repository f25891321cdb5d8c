from __future__ import annotations

import json
from pathlib import Path

import pytest

from ceir_sdk.concepts import load_prompts
from ceir_sdk.errors import BadInputError


def test_default_prompts_have_three_kinds_with_few_shot() -> None:
    prompts = load_prompts()
    assert set(prompts.kinds) == {"features", "superclasses", "around"}
    assert "hedg" in prompts.system.lower() or "may" in prompts.system
    turns = prompts.messages("features", "zebra")
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert turns[-1]["content"].endswith('"zebra":')
    assert len(prompts.hash) == 64


def test_user_prompts_replace_the_default_and_change_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({
        "system": "Be brief.",
        "kinds": {"features": {"template": "Parts of a \"{class_name}\"?", "few_shot": []}},
    }))
    prompts = load_prompts(path)
    assert prompts.messages("features", "bee") == [{"role": "user", "content": 'Parts of a "bee"?'}]
    assert prompts.hash != load_prompts().hash


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"kinds": {}}, "system"),
        ({"system": "x", "kinds": {"features": {"template": "no placeholder"}}}, "class_name"),
        ({"system": "x", "kinds": {"features": {"template": "{class_name} {oops}"}}}, "stray brace"),
        ({"system": "x", "kinds": {"features": {"template": "{class_name}", "few_shot": [{"reply": "x"}]}}},
         "few_shot"),
    ],
)
def test_bad_prompt_files_say_what_is_wrong(tmp_path: Path, data: dict, match: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match=match):
        load_prompts(path)
