"""Entry point of the onnx plugin: registers its factories with ceir (light imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


def _not_built(spec: str | None, **options: Any) -> Any:
    raise NotImplementedError("the onnx exporter is not implemented yet")


@hookimpl
def register_exporters(register: Any) -> None:
    register("onnx", _not_built, description="(shell: not implemented yet)")
