"""A helper every module of the distribution uses: it belongs to no single entry point."""

from __future__ import annotations


def fail(who: str) -> None:
    raise RuntimeError(f"{who}: the plugin's own bug, raised in a shared helper")
