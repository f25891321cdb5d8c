"""Entry point of the openai plugin: registers its factories with ceir (light imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


def _not_built(spec: str | None, **options: Any) -> Any:
    raise NotImplementedError("the openai concept_source is not implemented yet")


@hookimpl
def register_concept_sources(register: Any) -> None:
    register("openai", _not_built, description="(shell: not implemented yet)")
