"""The onnx plugin registers its exporter and `ceir export onnx`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ceir_sdk import plugins as ceir_plugins


def test_exporter_and_command_are_registered(plugin_host: ceir_plugins.PluginHost, tmp_path: Path) -> None:
    import ceir_onnx.plugin

    plugin_host.register(ceir_onnx.plugin, name="onnx")
    exporter: Any = ceir_plugins.get_exporter("onnx")
    assert exporter.name == "onnx" and callable(exporter.export)

    import click

    group = click.Group(commands={"export": click.Group("export")})
    ceir_onnx.plugin.register_commands(cli=group)
    result = CliRunner().invoke(group, ["export", "onnx", "--help"])
    assert result.exit_code == 0 and "--int8" in result.output and "--fp16" in result.output
    # a folder that is not a model directory is refused with the loader's message, not a traceback
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(group, ["export", "onnx", str(tmp_path / "empty"), str(tmp_path / "out")])
    assert result.exit_code != 0 and not (tmp_path / "out").exists()
