"""``ceir demo`` (the main job on the offline default) and ``ceir report``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True,
              help="Folder for the model, bundle, index, report.html and results.json.")
@click.option("--size", type=click.Choice(["full", "small"]), default="full", show_default=True,
              help="full: 6,000 training / 2,000 evaluation images; small: 1,200 / 400 (CI).")
@click.option("--concepts", "concept_source", default=None,
              help="Concept source, e.g. openai:gpt-4o or anthropic:claude-sonnet-4-5 (needs the API key in "
                   "the environment). Default: the world's own concept lists (static:world10).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir: Path, size: str, concept_source: str | None, seed: int, quiet: bool) -> None:
    """Fit, cluster, explain, export, index and query on the built-in offline world; write a report."""
    from ceir_sdk.demo.pipeline import DemoConfig, run_demo
    from ceir_sdk.demo.summary import summary_lines

    results = run_demo(DemoConfig(out_dir=out_dir, size=size, concept_source=concept_source, seed=seed,
                                  progress=not quiet))
    for line in summary_lines(results):
        click.echo(line)
    click.echo(f"\nreport: {out_dir / 'report.html'}\nresults: {out_dir / 'results.json'}")


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--dataset", required=True,
              help="A world (world10, world100_20: its test split) or an image folder with one subfolder per class.")
@click.option("-n", "count", type=int, default=2000, show_default=True, help="Images to draw from a world.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True)
@click.option("--on-error", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="What to do with unreadable images: skip them (and say so) or stop.")
@click.option("--quiet", is_flag=True)
def report(model_dir: Path, dataset: str, count: int, out_file: Path, on_error: str, quiet: bool) -> None:
    """Render the HTML report (and a JSON beside it) for a fitted model on a labelled dataset."""
    from ceir_sdk.demo.report_job import run_report
    from ceir_sdk.demo.summary import summary_lines

    results = run_report(model_dir, dataset, out_file, count=count, on_error=on_error, progress=not quiet)
    for line in summary_lines(results):
        click.echo(line)
    click.echo(f"\nreport: {out_file}\nresults: {out_file.with_suffix('.json')}")


def register(cli: click.Group) -> None:
    cli.add_command(demo)
    cli.add_command(report)
