"""``ceir doctor``: which onnxruntime and faiss builds are installed, active, and seeing a GPU."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Report the onnxruntime and faiss builds (CPU or GPU), their versions and visible GPUs.

    Exits 1 when a CPU and a GPU build of the same module are both installed, or faiss is missing.
    """
    from ceir_sdk.builds import problems, report

    rep = report()
    found = problems(rep)
    if as_json:
        click.echo(json.dumps({**rep, "problems": found}, indent=2))
    else:
        for name, part in rep.items():
            dists = ", ".join(f"{d['distribution']} {d['version']}" for d in part["installed"]) or "none"
            click.echo(f"{name}: installed {dists}")
            active = part.get("active")
            if active is None:
                click.echo(f"  active: none ({part.get('error')})")
                continue
            click.echo(f"  active: {active['build'].upper()} build {active['version']} ({active['module']})")
            if "providers" in active:
                click.echo(f"  providers: {', '.join(active['providers'])}")
            seen = active["gpus_visible"]
            click.echo(f"  GPUs visible: {seen if seen is not None else 'none (no NVIDIA driver)'}")
        for line in found:
            click.echo(f"problem: {line}", err=True)
    conflict = any(part["conflict"] for part in rep.values())
    if conflict or rep["faiss"].get("active") is None:
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(doctor)
