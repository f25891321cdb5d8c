"""Top-level ``ceir`` group: core commands plus whatever plugins add."""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from pathlib import Path

import click

from ceir_sdk._version import __version__
from ceir_sdk.errors import CeirError

#: Distributions of this repository; a traceback through them is ours to fix, not a plugin's.
FIRST_PARTY = {"ceir-sdk", "ceir-open-clip", "ceir-vae", "ceir-openai", "ceir-anthropic", "ceir-static",
               "ceir-ray", "ceir-onnx", "ceir-serve"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ceir")
def cli() -> None:
    """ceir: concept-based, explainable image embeddings (CEIR)."""


@cli.group()
def export() -> None:
    """Export a fitted model to a deployment format (formats come from plugins)."""


@cli.group()
def scale() -> None:
    """Embed and index large collections on an existing engine (from plugins)."""


def _add_core_commands() -> None:
    # Each module keeps its heavy imports inside the command bodies.
    from ceir_sdk.cli import plugins_cmd

    cli.add_command(plugins_cmd.plugins)
    for module_name in ("concepts_cmd", "model_cmd", "index_cmd", "demo_cmd", "doctor_cmd"):
        try:
            module = __import__(f"ceir_sdk.cli.{module_name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == f"ceir_sdk.cli.{module_name}":
                continue  # that part of the CLI is not built yet
            raise
        module.register(cli)


def _add_plugin_commands() -> None:
    from ceir_sdk.plugins import get_host

    get_host().add_commands(cli)  # the host calls each plugin's hook and records a failing one


_BUILT = False


def build() -> click.Group:
    global _BUILT
    if not _BUILT:
        _add_core_commands()
        _add_plugin_commands()
        _BUILT = True
    return cli


def main(argv: list[str] | None = None) -> None:
    try:
        build()
    except CeirError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    try:
        cli.main(args=argv, prog_name="ceir", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CeirError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        blamed = _plugin_in_traceback(exc)
        if blamed is None:
            raise
        traceback.print_exception(exc)
        click.echo(f"Error: {type(exc).__name__} raised inside plugin {blamed}. This is a fault of that plugin "
                   "(or of how it is used): report it to its authors with the traceback above, or leave it out "
                   "with CEIR_SKIP_PLUGINS.", err=True)
        sys.exit(1)


def _plugin_in_traceback(exc: BaseException) -> str | None:
    """The third-party plugin whose code the exception passed through, innermost first."""
    from ceir_sdk.plugins import get_host

    roots: dict[str, str] = {}
    host = get_host()
    for name, plugin in host.pm.list_name_plugin():
        status = host.statuses.get(name)
        module = inspect.getmodule(plugin)
        if module is None or status is None or status.distribution in FIRST_PARTY:
            continue
        package = sys.modules.get(module.__name__.partition(".")[0], module)
        location = getattr(package, "__file__", None)
        if location:
            roots[str(Path(location).parent)] = f"{name!r} ({status.distribution or 'not installed'} " \
                                                f"{status.version or ''})".replace(" )", ")")
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        for root, label in roots.items():
            if frame.filename.startswith(root + os.sep):
                return f"{label} at {Path(frame.filename).name}:{frame.lineno}"
    return None
