"""The tutorial's two plugins (docs/plugins.md, examples/plugins/), used as a third party would use
them: pip-installed from their folders, found through their entry points, then the tutorial's own
commands, read from the page: concepts, fit, export, index, search (issue 23).

The page shows the example files verbatim; a test checks that it still does.
"""

from __future__ import annotations

import json
import logging
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.plugin_bases.preprocess import PREPROCESS_KEYS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
EXAMPLES = ROOT / "examples"
PLUGINS = ("ceir-example-backbone", "ceir-example-concepts")


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _example_files() -> set[str]:
    files = {p for p in (EXAMPLES / "plugins").rglob("*") if p.is_file()
             and "__pycache__" not in p.parts and "build" not in p.parts and ".egg-info" not in str(p)}
    return {p.relative_to(ROOT).as_posix() for p in files} | {"examples/world_images.py"}


def test_the_tutorial_shows_every_example_file_verbatim() -> None:
    shown = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", _doc(), re.S)
    assert {path for path, _ in shown} == _example_files()
    for path, code in shown:
        assert code == (ROOT / path).read_text(encoding="utf-8"), f"docs/plugins.md shows an old {path}"


def test_the_preprocessing_table_lists_every_key() -> None:
    table = _doc().split("### Preprocessing keys", 1)[1].split("###", 1)[0]
    assert [row.split("`")[1] for row in table.splitlines() if row.startswith("| `")] == list(PREPROCESS_KEYS)


def _tutorial_commands() -> list[list[str]]:
    block = _doc().split("<!-- commands: tutorial -->\n```console\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line[2:]) for line in block.splitlines() if line.startswith("$ ")]


@pytest.fixture(scope="module")
def author(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(working folder, site folder): the plugins copied there and pip-installed into ``site``,
    which this process and its subprocesses see on their paths."""
    work = tmp_path_factory.mktemp("author")
    for name in PLUGINS:
        shutil.copytree(EXAMPLES / "plugins" / name, work / name,
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    shutil.copy(EXAMPLES / "world_images.py", work / "world_images.py")
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), *[str(work / n) for n in PLUGINS]],
                   check=True, cwd=work)
    sys.path.insert(0, str(site))
    try:
        yield work, site
    finally:
        sys.path.remove(str(site))


def test_ceir_plugins_lists_the_installed_examples(author: tuple[Path, Path]) -> None:
    _, site = author
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("CEIR_LOAD_PLUGINS", None)
    out = subprocess.run([sys.executable, "-m", "ceir_sdk", "plugins"], env=env, capture_output=True, text=True,
                         check=True).stdout
    for entry_point, component in (("example-backbone", "backbone: example-colour"),
                                   ("example-concepts", "concept_source: example-csv")):
        section = out.split(f"{entry_point} 0.1.0", 1)[1].split("\n\n", 1)[0]
        assert section.startswith(" [ok]") and component in section, out


def _redness(path: str) -> float:
    rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
    return float((rgb[..., 0] - rgb[..., 1:].mean(axis=-1)).mean())


def test_the_tutorial_runs_end_to_end(author: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    from click.testing import CliRunner

    from ceir_sdk.cli.main import build

    work, _ = author
    monkeypatch.chdir(work)
    host = ceir_plugins.PluginHost()
    host.load_entry_points(only=["example-backbone", "example-concepts", "vae", "onnx"])
    assert "example-colour" in host.registrations("backbone") and "example-csv" in host.registrations("concept_source")
    ceir_plugins.reset_host(host)
    try:
        cli = build()
        export_group: Any = cli.commands["export"]
        if "onnx" not in export_group.commands:  # built earlier in this session under another host
            import ceir_onnx.plugin

            ceir_onnx.plugin.register_commands(cli=cli)
        outputs: dict[str, Any] = {}
        with caplog.at_level(logging.WARNING):
            for argv in _tutorial_commands():
                if argv[0] == "python":
                    monkeypatch.setattr(sys, "argv", argv[1:])
                    runpy.run_path(argv[1], run_name="__main__")
                    continue
                assert argv[0] == "ceir"
                result = CliRunner().invoke(cli, argv[1:], catch_exceptions=False)
                assert result.exit_code == 0, f"{shlex.join(argv)}:\n{result.output}"
                outputs[" ".join(argv[1:3])] = result.output
            searched = CliRunner().invoke(cli, [*_tutorial_commands()[-1][1:], "--json"], catch_exceptions=False)
    finally:
        ceir_plugins.reset_host(None)

    concept_set = json.loads((work / "concepts.json").read_text())
    assert len(concept_set["concepts"]) == 22 and concept_set["source"].startswith("example-csv:")
    config = json.loads((work / "model" / "config.json").read_text())
    assert "text_alignment" in config["provenance"] and config["backbone"]["name"] == "example-colour"
    manifest = json.loads((work / "bundle" / "manifest.json").read_text())
    image = manifest["graphs"]["image"]
    assert image["agreement_to_backbone"]["min_cosine"] > 0.999 and set(image["variants"]) == {"fp32"}
    assert "int8" in image["not_written"] and not (work / "bundle" / "image.int8.onnx").exists()
    assert any("nothing to quantise" in r.getMessage() for r in caplog.records)
    hits = json.loads(searched.output)
    assert len(hits) == 5
    every = [str(p) for p in (work / "images" / "test").rglob("*.png")]
    assert np.mean([_redness(h["key"]) for h in hits]) > np.mean([_redness(p) for p in every]) + 0.05
