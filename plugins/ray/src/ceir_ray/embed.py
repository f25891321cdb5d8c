"""Embed a large image collection on Ray Data into resumable parquet shards.

Pipeline: the plan's read units (JSON, never crossing a shard) -> ``map_batches`` with
:class:`ceir_ray.actor.EmbedActor` on an actor pool (one onnxruntime session per actor;
Ray restarts a dead actor and retries its batch) -> the driver, which files rows into
per-shard buffers keyed by row number and writes a shard the moment all its rows are in.
Keying by row makes a retried batch harmless: a row that arrives twice is counted, not
written twice; a shard with a missing row is never written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ceir_ray.actor import actor_class
from ceir_ray.cluster import actor_resources, ray_session
from ceir_ray.embedders import EmbedderFactory, OnnxEmbedder
from ceir_ray.plan import Plan, plan_input
from ceir_ray.shards import MANIFEST, ShardSet, shard_table
from ceir_sdk.errors import BadInputError


@dataclass
class EmbedReport:
    out_dir: str
    n_rows: int
    n_shards: int
    shards_skipped: int  # finished by an earlier run
    shards_written: int
    rows_embedded: int
    errors: int  # rows whose image could not be read (kept, with an error message)
    duplicate_rows_ignored: int  # rows delivered twice after a retry
    actors: int
    providers: str
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.rows_embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_second": round(self.images_per_second, 2)}


class _ShardBuffer:
    def __init__(self, start: int, n: int) -> None:
        self.start, self.n = start, n
        self.filled = np.zeros(n, dtype=bool)
        self.latent: np.ndarray | None = None
        self.concepts: np.ndarray | None = None
        self.errors: list[str | None] = [None] * n

    def put(self, rows: np.ndarray, latent: np.ndarray, concepts: np.ndarray, errors: Sequence[str]) -> int:
        if self.latent is None:
            self.latent = np.empty((self.n, latent.shape[1]), np.float32)
            self.concepts = np.empty((self.n, concepts.shape[1]), np.float32)
        assert self.concepts is not None
        local = rows - self.start
        new = ~self.filled[local]
        # a row can repeat only across retried batches; keep the first copy
        idx = local[new]
        self.latent[idx] = latent[new]
        self.concepts[idx] = concepts[new]
        for i, err in zip(idx, np.asarray(errors, dtype=object)[new]):
            self.errors[i] = str(err) if err else None
        self.filled[idx] = True
        return int((~new).sum())

    @property
    def full(self) -> bool:
        return bool(self.filled.all())


def _bundle_info(bundle: str | os.PathLike[str] | None) -> dict[str, Any]:
    if bundle is None:
        return {}
    from ceir_onnx.bundle import read_manifest

    manifest = read_manifest(bundle, verify=False)
    graphs = manifest.get("graphs", {}).get("image", {}).get("variants", {})
    files = manifest.get("files", {})
    return {"bundle_image_sha256": {p: files.get(v["file"], {}).get("sha256") for p, v in graphs.items()}}


def _clear(out: Path) -> None:
    if not (out / MANIFEST).exists():
        return
    for p in out.glob("shard-*.parquet"):
        p.unlink()
    (out / MANIFEST).unlink()


def embed_collection(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Plan,
    out_dir: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str] | None = None,
    embedder: EmbedderFactory | None = None,
    precision: str = "fp32",
    backend: str = "auto",
    shard_size: int = 10_000,
    unit_rows: int = 64,
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    cpus_per_actor: float = 1.0,
    address: str | None = None,
    num_cpus: int | None = None,
    column: str | None = None,
    id_column: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> EmbedReport:
    """Embed ``source`` into parquet shards under ``out_dir``; rerun the same call to resume.

    ``bundle`` is a ceir ONNX bundle (``ceir export onnx``); ``embedder`` replaces it with any
    factory of embed functions (see :mod:`ceir_ray.embedders`). ``address`` joins a running
    Ray cluster; without it a local one is started with ``num_cpus`` CPUs.
    """
    if (bundle is None) == (embedder is None):
        raise BadInputError("give exactly one of bundle= (an ONNX bundle folder) or embedder= (a factory)")
    if shard_size < 1 or unit_rows < 1:
        raise BadInputError(f"shard_size and unit_rows must be >= 1; got {shard_size} and {unit_rows}")
    t0 = time.perf_counter()
    plan = source if isinstance(source, Plan) else plan_input(source, column=column, id_column=id_column)
    if plan.n_rows == 0:
        raise BadInputError("the input holds no rows")
    out = Path(out_dir)
    if overwrite:
        _clear(out)
    shards = ShardSet.open_for_writing(out, fingerprint=plan.fingerprint(), n_rows=plan.n_rows,
                                       shard_size=shard_size, info=_bundle_info(bundle))
    pending = shards.pending()
    report = EmbedReport(str(out), plan.n_rows, shards.n_shards, shards.n_shards - len(pending), 0, 0, 0, 0, 0, "", 0.0)
    if not pending:
        report.seconds = time.perf_counter() - t0
        return report

    with ray_session(address, num_cpus=num_cpus) as ray:
        n_actors, cpus, gpus, providers = actor_resources(ray, num_actors, num_gpus_per_actor, cpus_per_actor)
        factory = embedder or OnnxEmbedder(os.path.abspath(os.fspath(bundle)), precision=precision,  # type: ignore[arg-type]
                                           providers=providers, threads=max(1, int(cpus)), backend=backend)
        report.actors, report.providers = n_actors, providers if embedder is None else "custom"
        _run(ray, plan, shards, pending, factory, report, n_actors=n_actors, cpus=cpus, gpus=gpus,
             unit_rows=unit_rows, progress=progress)
    report.seconds = time.perf_counter() - t0
    return report


def _run(ray: Any, plan: Plan, shards: ShardSet, pending: list[int], factory: EmbedderFactory,
         report: EmbedReport, *, n_actors: int, cpus: float, gpus: float, unit_rows: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    units = plan.units(pending, shards.shard_size, unit_rows)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    # In-order delivery keeps only about one shard buffered in the driver at a time.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    try:
        ds = ray.data.from_items([{"unit": u} for u in units], override_num_blocks=min(len(units), 20_000))
        ds = ds.map_batches(
            actor_class(factory), batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=n_actors), num_cpus=cpus, num_gpus=gpus or None,
        )
        buffers: dict[int, _ShardBuffer] = {}
        total = sum(shards.expected_rows(s) for s in pending)
        with tqdm(total=total, desc="embed", unit="img", disable=not progress) as bar:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                rows = batch["row"].astype(np.int64)
                for shard in np.unique(rows // shards.shard_size):
                    shard = int(shard)
                    sel = rows // shards.shard_size == shard
                    if shards.is_done(shard):  # a late retry of a shard already written
                        report.duplicate_rows_ignored += int(sel.sum())
                        continue
                    buf = buffers.get(shard)
                    if buf is None:
                        buf = buffers[shard] = _ShardBuffer(shard * shards.shard_size, shards.expected_rows(shard))
                    before = int(buf.filled.sum())
                    report.duplicate_rows_ignored += buf.put(rows[sel], batch["latent"][sel], batch["concepts"][sel],
                                                             batch["error"][sel])
                    bar.update(int(buf.filled.sum()) - before)
                    if buf.full:
                        _flush(plan, shards, shard, buffers.pop(shard), report)
        if buffers:
            missing = {s: int((~b.filled).sum()) for s, b in buffers.items()}
            raise RuntimeError(f"Ray returned no result for some rows {missing}; rerun to redo those shards")
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


def _flush(plan: Plan, shards: ShardSet, shard: int, buf: _ShardBuffer, report: EmbedReport) -> None:
    assert buf.latent is not None
    table = shard_table(np.arange(buf.start, buf.start + buf.n), plan.ids.slice(buf.start, buf.n),
                        buf.latent, buf.concepts, buf.errors)
    shards.write_shard(shard, table)
    report.shards_written += 1
    report.rows_embedded += buf.n
    report.errors += sum(e is not None for e in buf.errors)


__all__ = ["EmbedReport", "OnnxEmbedder", "embed_collection"]
