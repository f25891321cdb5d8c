"""Entry point multi-delta: its register_commands raises when CEIR_TEST_BREAK_MULTI is set."""

from __future__ import annotations

import os
from typing import Any

from ceir_sdk import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    if os.environ.get("CEIR_TEST_BREAK_MULTI"):
        raise RuntimeError("multi-delta: simulated failure while adding its commands")

    @cli.command(name="test-multi-delta")
    def command() -> None:
        """Fail in its own code (registered by ceir-multi-plugin's delta)."""
        raise KeyError("delta's own bug")
