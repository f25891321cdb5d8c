"""`ceir export onnx MODEL_DIR OUT_DIR` and `ceir tune BUNDLE`: click commands (heavy imports
inside the bodies)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("onnx")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--fp16", is_flag=True, help="Also write a float16 image graph (for GPUs).")
@click.option("--int8", is_flag=True, help="Also write int8 image graphs for CPUs: dynamically quantized (run by "
              "onnxruntime) and static, calibrated on the check images (run by OpenVINO).")
@click.option("--int8-static/--no-int8-static", default=True, show_default=True,
              help="With --int8, also write the static int8 graph OpenVINO runs (calibration adds export time).")
@click.option(
    "--int8-min-cosine", default=0.999, show_default=True, type=click.FloatRange(0.0, 1.0),
    help="int8 target agreement to fp32 (min cosine of latents and concepts on the check images); below it, "
         "the last backbone layers are kept in float, up to half of them. 0 quantizes the whole backbone.",
)
@click.option("--opset", default=18, show_default=True, help="ONNX opset version.")
@click.option(
    "--check-images",
    type=click.Path(exists=True, path_type=Path),
    help="Folder of images to measure parity and fp16/int8 agreement on (default: synthetic images).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at OUT_DIR.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def onnx_command(
    model_dir: Path, out_dir: Path, fp16: bool, int8: bool, int8_static: bool, int8_min_cosine: float, opset: int,
    check_images: Path | None, overwrite: bool, quiet: bool,
) -> None:
    """Export the fitted model in MODEL_DIR to an ONNX bundle in OUT_DIR."""
    from ceir_onnx.bundle import read_manifest
    from ceir_onnx.export import export_model_dir

    out = export_model_dir(
        model_dir, out_dir, fp16=fp16, int8=int8, int8_static=int8_static, int8_min_cosine=int8_min_cosine or None,
        opset=opset, overwrite=overwrite, check_images=check_images, progress=not quiet,
    )
    manifest = read_manifest(out, verify=False)
    click.echo(f"wrote {out}")
    # One line per image-graph variant; the full agreement figures are in manifest.json.
    for name, variant in manifest["graphs"]["image"]["variants"].items():
        agreement = variant.get("agreement_to_torch") or variant.get("agreement_to_fp32") or {}
        against = "torch" if "agreement_to_torch" in variant else "fp32"
        latent = agreement.get("latent", {})
        size_mb = (out / variant["file"]).stat().st_size / 1e6
        line = f"  {name}: {size_mb:.1f} MB, for {variant.get('intended_for', '?')}"
        if latent:
            line += f"; latent min cosine to {against} {latent['min_cosine']:.6f}"
        if variant.get("target_met") is False:
            line += f" (BELOW the target {variant.get('target_min_cosine')})"
        click.echo(line)
        if "static" in variant:  # the OpenVINO int8 graph, measured on images it was not calibrated on
            static, agree = variant["static"], variant["static"]["agreement_to_fp32"]
            click.echo(f"  {name} static: {(out / static['file']).stat().st_size / 1e6:.1f} MB, for "
                       f"{static['intended_for']}; latent min cosine to fp32 "
                       f"{agree['latent']['min_cosine']:.6f} ({agree['on']})")
    image = manifest["graphs"]["image"]
    to_backbone = image.get("agreement_to_backbone")
    if to_backbone:  # the bundle against the backbone's own encode_images (preprocessing included)
        click.echo(f"  image features vs the backbone's own encode_images on {to_backbone.get('n', '?')} images: "
                   f"min cosine {to_backbone['min_cosine']:.6f}")
    for name, why in (image.get("not_written") or {}).items():
        click.echo(f"  {name}: not written ({why})")
    if not quiet:
        click.echo(f"details: {out / 'manifest.json'}")


@click.command("tune")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Threads the runtime will use (default: all usable cores); the choice is recorded per count.")
@click.option("--check-images", type=click.Path(exists=True, path_type=Path),
              help="Images to check agreement on (default: the check images stored in the bundle at export, else "
                   "the exporter's synthetic images); use your own data "
                   "for a verdict that holds on it.")
@click.option("--min-cosine", default=0.999, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Agreement bar: latent min cosine to fp32 a path needs to be chosen.")
@click.option("--batch", "timing_batch", default=16, show_default=True, type=click.IntRange(1),
              help="Images per timed call.")
@click.option("--no-record", is_flag=True, help="Measure and show, but leave the tuning cache as it is.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tune_command(bundle: Path, threads: int | None, check_images: Path | None, min_cosine: float,
                 timing_batch: int, no_record: bool, as_json: bool) -> None:
    """Time each available backend x precision on BUNDLE, check its agreement with fp32, and
    record the fastest that agrees for this machine (the runtime's backend/precision "auto")."""
    import json

    from ceir_onnx.runtime.backends import installed_backends
    from ceir_onnx.runtime.tune import record, tune

    say = (lambda _: None) if as_json else (lambda text: click.echo(text, err=True))
    say(f"backends installed: {', '.join(f'{k} {v}' for k, v in installed_backends().items())}")
    result = tune(bundle, threads=threads, check_images=check_images, min_cosine=min_cosine,
                  timing_batch=timing_batch, progress=say)
    where = None if no_record or result.backend is None else record(result)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "recorded_in": None if where is None else str(where)}, indent=2))
        return
    machine = result.key["machine"]
    click.echo(f"{bundle} on {machine['cpu_model']} ({' '.join(machine['cpu_features']) or 'no listed features'}), "
               f"{machine['threads']} threads; agreement on {result.check_images}, bar latent min cosine >= "
               f"{result.min_cosine}")
    click.echo(result.table())
    if result.backend is None:
        raise click.ClickException(f"no path met the bar ({'; '.join(result.notes)}); nothing recorded")
    click.echo(f"chosen: {result.backend} {result.precision}"
               + (f"; recorded in {where} (used when backend/precision are 'auto')" if where else "; not recorded"))
