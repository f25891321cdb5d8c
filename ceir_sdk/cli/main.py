"""Top-level ``ceir`` group: core commands plus whatever plugins add."""

from __future__ import annotations

import sys
import traceback

import click

from ceir_sdk._version import __version__
from ceir_sdk.errors import CeirError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ceir")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ceir: concept-based, explainable image embeddings (CEIR)."""
    if ctx.invoked_subcommand != "plugins":
        from ceir_sdk.plugins import get_host

        # Strict mode (CEIR_STRICT_PLUGINS=1): no command runs beside a failed plugin; the error
        # lists every failure. `ceir plugins` prints its report (JSON included) and then fails.
        get_host()


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

    get_host(check=False).add_commands(cli)  # the host calls each plugin's hook and records a failing one


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
    """The third-party plugin whose code the exception was raised in or passed through (the
    deepest frame of a plugin's own modules, see PluginHost.blame), as the error message names it."""
    from ceir_sdk.plugins import get_host

    blamed = get_host(check=False).blame(exc)
    return None if blamed is None else str(blamed)
