"""The core knows no plugin's file format (issue 19): bundles are recognised, fingerprinted and
opened through the exporter that wrote them, and plugins add CLI commands through the host."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest

import ceir_sdk
from ceir_sdk import hookimpl
from ceir_sdk.plugins import PluginHost

CORE = Path(ceir_sdk.__file__).parent
# A bundle format name, a read of a bundle manifest's graph table, or the ONNX plugin's modules.
PLUGIN_FORMAT = re.compile(r"ceir-onnx-bundle|\[\"graphs\"\]|\[\"variants\"\]|\bceir_onnx\b")


def test_ceir_sdk_holds_no_plugin_format_literal() -> None:
    found = [f"{path.relative_to(CORE)}:{n}: {line.strip()}"
             for path in sorted(CORE.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if PLUGIN_FORMAT.search(line)]
    assert not found, "plugin formats belong to their plugins (contracts.Exporter):\n" + "\n".join(found)


def test_a_bundle_is_recognised_and_fingerprinted_by_its_exporter(tmp_path: Path) -> None:
    from ceir_sdk.index.encoder import encoder_kind, model_fingerprint

    class Exporter:
        name = "toy"

        def export(self, model_dir: Any, out_dir: Any, **options: Any) -> Path:
            raise NotImplementedError

        def recognises(self, path: Any) -> bool:
            return (Path(path) / "toy.txt").is_file()

        def fingerprint(self, path: Any) -> str:
            return (Path(path) / "toy.txt").read_text()

    class Plugin:
        @hookimpl
        def register_exporters(self, register: Any) -> None:
            register("toy", lambda spec, **options: Exporter())

    from ceir_sdk import plugins

    host = PluginHost()
    host.register(Plugin(), name="toy")
    plugins.reset_host(host)
    try:
        (tmp_path / "toy.txt").write_text("abc")
        assert encoder_kind(tmp_path) == "toy-bundle" and model_fingerprint(tmp_path) == "abc"
        with pytest.raises(Exception, match="neither a fitted CEIR model directory nor a bundle"):
            encoder_kind(tmp_path / "missing")
    finally:
        plugins.reset_host(None)


def test_the_host_adds_commands_and_isolates_a_plugin_that_fails() -> None:
    class Good:
        @hookimpl
        def register_commands(self, cli: Any) -> None:
            cli.add_command(click.Command("hello", callback=lambda: None))

    class Bad:
        @hookimpl
        def register_commands(self, cli: Any) -> None:
            raise RuntimeError("no luck")

    host = PluginHost()
    host.register(Bad(), name="bad")
    host.register(Good(), name="good")
    group = click.Group("ceir")
    host.add_commands(group)
    assert "hello" in group.commands
    assert host.statuses["bad"].error is not None and "no luck" in host.statuses["bad"].error
    assert host.statuses["good"].ok
