"""Entry point multi-gamma: fails at import when CEIR_TEST_BREAK_MULTI is set."""

from __future__ import annotations

import os
from typing import Any

from ceir_sdk import hookimpl

if os.environ.get("CEIR_TEST_BREAK_MULTI"):
    raise ImportError("ceir_multi_plugin.gamma: simulated missing dependency 'gamma_lib'")


@hookimpl
def register_commands(cli: Any) -> None:
    @cli.command(name="test-multi-gamma")
    def command() -> None:
        """Divide by zero in its own code (registered by ceir-multi-plugin's gamma)."""
        print(1 / 0)
