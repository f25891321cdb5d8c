"""A plugin that is a single module: installed (not editable) it sits in site-packages next to
numpy and every other library, so its folder says nothing about which code is its own."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    @cli.command(name="test-single-numpy")
    def command() -> None:
        """Invert a singular matrix: numpy raises, called from this plugin's code."""
        import numpy as np

        print(np.linalg.inv(np.zeros((2, 2))))  # the blame names this line, not numpy's
