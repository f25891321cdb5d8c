"""`ceir scale embed` and `ceir scale index` (heavy imports inside the commands)."""

from __future__ import annotations

import json

import click


@click.command("embed")
@click.argument("source", type=click.Path(exists=True))
@click.argument("out_dir", type=click.Path())
@click.option("--bundle", required=True, type=click.Path(exists=True, file_okay=False),
              help="ONNX bundle folder from `ceir export onnx`.")
@click.option("--address", default=None,
              help="Ray cluster to join (auto, host:6379, ray://host:10001); default: start a local one.")
@click.option("--num-cpus", type=int, default=None, help="CPUs of the local cluster (default: all).")
@click.option("--actors", "num_actors", type=int, default=None,
              help="Actors, one onnxruntime session each (default: one per GPU, else one per CPU).")
@click.option("--gpus-per-actor", type=float, default=None, help="0 forces CPU actors (default: 1 if GPUs exist).")
@click.option("--cpus-per-actor", type=float, default=1.0, show_default=True)
@click.option("--precision", default="fp32", show_default=True,
              help="Image graph variant: fp32, bf16 (OpenVINO), fp16, int8, or auto (the `ceir tune` choice).")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", "onnxruntime", "openvino"]),
              help="Inference backend of each actor; auto: the `ceir tune` choice for the machine if recorded "
                   "(at the given precision), else onnxruntime.")
@click.option("--shard-size", type=int, default=10_000, show_default=True, help="Rows per parquet shard.")
@click.option("--unit-rows", type=int, default=64, show_default=True, help="Rows per Ray batch.")
@click.option("--column", default=None, help="Parquet column with image bytes or paths (default: image / path).")
@click.option("--id-column", default=None, help="Parquet column with row ids (default: id if present).")
@click.option("--overwrite", is_flag=True, help="Discard shards of an earlier, different run in OUT_DIR.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def embed_command(source: str, out_dir: str, bundle: str, address: str | None, num_cpus: int | None,
                  num_actors: int | None, gpus_per_actor: float | None, cpus_per_actor: float, precision: str,
                  backend: str, shard_size: int, unit_rows: int, column: str | None, id_column: str | None,
                  overwrite: bool, quiet: bool) -> None:
    """Embed SOURCE (folder of images, parquet of bytes or paths) into parquet shards in OUT_DIR.

    Rerunning the same command resumes: finished shards are skipped.
    """
    from ceir_ray.embed import embed_collection

    report = embed_collection(
        source, out_dir, bundle=bundle, precision=precision, backend=backend, shard_size=shard_size,
        unit_rows=unit_rows,
        num_actors=num_actors, num_gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor,
        address=address, num_cpus=num_cpus, column=column, id_column=id_column, overwrite=overwrite,
        progress=not quiet,
    )
    click.echo(json.dumps(report.to_dict(), indent=1))


@click.command("index")
@click.argument("shards_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path())
@click.option("--space", type=click.Choice(["latent", "concepts"]), default="latent", show_default=True)
@click.option("--metric", type=click.Choice(["l2", "ip", "cosine"]), default="l2", show_default=True)
@click.option("--factory", default=None, help="faiss index-factory string (default: chosen by size).")
@click.option("--train-size", type=int, default=None, help="Rows sampled for training (default: by index type).")
@click.option("--nprobe", type=int, default=None, help="IVF lists probed per query (default: nlist/64, at least 8).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def index_command(shards_dir: str, out_dir: str, space: str, metric: str, factory: str | None,
                  train_size: int | None, nprobe: int | None, seed: int, quiet: bool) -> None:
    """Build a faiss index in OUT_DIR from the shards in SHARDS_DIR, one shard in memory at a time."""
    from dataclasses import asdict

    from ceir_ray.index import build_index

    report = build_index(shards_dir, out_dir, space=space, metric=metric, factory=factory, train_size=train_size,
                         nprobe=nprobe, seed=seed, progress=not quiet)
    click.echo(json.dumps(asdict(report), indent=1))
