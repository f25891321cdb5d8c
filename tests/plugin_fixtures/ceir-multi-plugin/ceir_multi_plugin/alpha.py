"""Entry point multi-alpha: a command that fails through the package's shared helper."""

from __future__ import annotations

from typing import Any

from ceir_multi_plugin import _shared
from ceir_sdk import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    @cli.command(name="test-multi-alpha")
    def command() -> None:
        """Fail in the shared helper (registered by ceir-multi-plugin's alpha)."""
        _shared.fail("alpha")  # the deepest frame of this entry point: the blame names this line
