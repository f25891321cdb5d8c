from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ceir_sdk.cli.main import build


def _run(args: list[str]) -> Any:
    result = CliRunner().invoke(build(), args, catch_exceptions=False)
    return result


def test_generate_filter_show_with_the_world(first_party_host: Any, tmp_path: Path) -> None:
    from ceir_sdk.worlds import World
    from ceir_sdk.worlds.descriptions import description_parts

    world = World("world10")
    atomic = {c for name in world.class_names for group in world.oracle.class_concepts(name).values() for c in group}
    expected = len(atomic | set(description_parts(world)))
    raw, filtered = tmp_path / "raw.json", tmp_path / "filtered.json"
    result = _run(["concepts", "generate", "static:world10", "-o", str(raw)])
    assert result.exit_code == 0, result.output
    assert f"{expected} concepts from static:world10 for 10 classes" in result.output
    result = _run(["concepts", "filter", str(raw), "-o", str(filtered), "--no-sentence-model",
                   "--add-class-names"])
    assert result.exit_code == 0, result.output
    # the length cap (30 characters) may drop long descriptions; the 10 class names are added
    kept = json.loads(filtered.read_text())["filters"][1]["after"]
    assert "class_names" in result.output and f"{kept + 10} concepts" in result.output
    data = json.loads(filtered.read_text())
    assert [f["name"] for f in data["filters"]] == ["normalise", "length", "class_names", "near_duplicates"]
    result = _run(["concepts", "show", str(filtered), "--removed", "--origins"])
    assert result.exit_code == 0
    assert "source:       static:world10" in result.output
    assert "ladybug  [ladybug/class_name]" in result.output


def test_generate_through_an_openai_compatible_server(
    first_party_host: Any, llm_server: Any, fake_keys: dict, tmp_path: Path
) -> None:
    out = tmp_path / "raw.json"
    args = ["concepts", "generate", "openai:gpt-4.1", "--base-url", llm_server.openai_base_url,
            "--class", "bee,zebra", "--samples", "1", "--cache-dir", str(tmp_path / "cache"),
            "-o", str(out), "--quiet"]
    result = _run(args)
    assert result.exit_code == 0, result.output
    assert "6 replies, 0 from cache" in result.output and "tokens in/out" in result.output
    result = _run(args)
    assert "6 from cache" in result.output
    assert llm_server.count() == 6
    assert fake_keys["openai"] not in out.read_text()


def test_llm_generate_needs_class_names(first_party_host: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(build(), ["concepts", "generate", "openai", "-o", str(tmp_path / "x.json")])
    assert result.exit_code != 0 and "--class" in result.output
