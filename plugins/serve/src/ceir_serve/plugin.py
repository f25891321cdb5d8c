"""Entry point of the serve plugin: `ceir serve` (light imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from ceir_serve.cli import serve_command

    cli.add_command(serve_command)
