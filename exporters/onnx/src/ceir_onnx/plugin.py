"""Entry point of the onnx plugin: the "onnx" exporter, `ceir export onnx` and `ceir tune` (light
imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


def _make_exporter(spec: str | None, **options: Any) -> Any:
    from ceir_onnx.export import OnnxExporter

    return OnnxExporter(**options)


@hookimpl
def register_exporters(register: Any) -> None:
    register(
        "onnx",
        _make_exporter,
        description="ONNX bundle (image + text graphs, fp16/int8 variants) for the torch-free runtime",
    )


@hookimpl
def register_commands(cli: Any) -> None:
    from ceir_onnx.cli import onnx_command, tune_command

    cli.commands["export"].add_command(onnx_command)
    cli.add_command(tune_command)
