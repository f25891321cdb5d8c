"""``ceir plugins``: what is installed, what it implements, what failed."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List plugins, their versions, the hooks they implement and load failures.

    With CEIR_STRICT_PLUGINS=1 the report (or JSON) is printed all the same, then the command fails
    with every failure listed."""
    from ceir_sdk.plugins import KIND_HOOKS, get_host, strict_mode

    host = get_host(check=False)
    registered: dict[str, dict[str, list[str]]] = {}
    for kind in KIND_HOOKS:
        for reg in host.registrations(kind, check=False).values():
            registered.setdefault(reg.plugin, {}).setdefault(kind, []).append(reg.name)
    statuses = sorted(host.statuses.values(), key=lambda s: s.name)  # after the hooks ran: their failures too
    for note in host.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        rows = []
        for status in statuses:
            row = status.as_dict()
            row["registers"] = registered.get(status.name, {})
            rows.append(row)
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_text(statuses, registered)
    if strict_mode():
        host.raise_failures()


def _print_text(statuses: list[Any], registered: dict[str, dict[str, list[str]]]) -> None:
    if not statuses:
        click.echo("No plugins loaded (check CEIR_LOAD_PLUGINS).")
    for status in statuses:
        version = status.version or "-"
        mark = "ok" if status.ok else "FAILED"
        click.echo(f"{status.name} {version} [{mark}]")
        if status.distribution:
            click.echo(f"  distribution: {status.distribution}")
        if status.hooks:
            click.echo(f"  hooks: {', '.join(status.hooks)}")
        for kind, names in sorted(registered.get(status.name, {}).items()):
            click.echo(f"  {kind}: {', '.join(sorted(names))}")
        if status.error:
            click.echo(f"  error: {status.error}")
        if status.where:
            click.echo(f"  raised at: {status.where}")
