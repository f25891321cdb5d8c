"""Entry point of the ray plugin: `ceir scale embed | index` (light imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from ceir_ray.cli import embed_command, index_command

    scale = cli.commands["scale"]
    scale.add_command(embed_command)
    scale.add_command(index_command)
