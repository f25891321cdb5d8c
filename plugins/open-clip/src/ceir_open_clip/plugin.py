"""Entry point of the open-clip plugin: registers its factories with ceir (light imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


def _not_built(spec: str | None, **options: Any) -> Any:
    raise NotImplementedError("the open-clip backbone is not implemented yet")


@hookimpl
def register_backbones(register: Any) -> None:
    register("open-clip", _not_built, description="(shell: not implemented yet)")
