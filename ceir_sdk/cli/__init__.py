"""The ``ceir`` command line. Everything heavy is imported inside commands."""

from ceir_sdk.cli.main import cli, main

__all__ = ["cli", "main"]
