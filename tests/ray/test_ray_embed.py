"""Embedding world images on a local Ray cluster: parity with the single-process runtime,
resuming, a worker killed mid-run, parquet input, unreadable images."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ceir_ray import ShardSet, embed_collection
from ceir_ray.embedders import OnnxEmbedder
from ceir_ray.shards import MANIFEST, column_matrix, shard_file
from crashing import CrashOnceEmbedder
from PIL import Image

from ceir_sdk.errors import BadInputError

SHARD = 400


@pytest.fixture(scope="module")
def reference(tiny_bundle: Path, world_images: Path) -> dict[str, Any]:
    """The single-process runtime's outputs, in the plan's row order (sorted relative paths)."""
    from ceir_onnx.runtime import Runtime

    files = sorted(world_images.rglob("*.png"), key=lambda p: p.relative_to(world_images).as_posix())
    rt = Runtime(tiny_bundle, precision="fp32", providers="cpu", batch_size=32)
    concepts, latent = rt.embed(files, output="both")
    return {"ids": [p.relative_to(world_images).as_posix() for p in files], "latent": latent, "concepts": concepts}


def _check_complete(out: Path, n: int) -> pa.Table:
    table = ShardSet.open(out).read_all()
    rows = table.column("row").to_numpy()
    assert table.num_rows == n, "rows were lost or duplicated"
    assert np.array_equal(rows, np.arange(n)), "every row exactly once, in order"
    return table


@pytest.mark.slow
def test_ray_embedding_equals_single_process(ray_local: Any, tiny_bundle: Path, world_images: Path,
                                             reference: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "shards"
    report = embed_collection(world_images, out, bundle=tiny_bundle, shard_size=SHARD, unit_rows=64, progress=False)
    n = len(reference["ids"])
    assert report.n_shards == -(-n // SHARD) and report.shards_written == report.n_shards
    assert report.actors == 2 and report.errors == 0
    table = _check_complete(out, n)
    assert table.column("id").to_pylist() == reference["ids"]
    latent, concepts = column_matrix(table, "latent"), column_matrix(table, "concepts")
    assert latent.shape == reference["latent"].shape and concepts.shape == reference["concepts"].shape
    np.testing.assert_allclose(latent, reference["latent"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(concepts, reference["concepts"], rtol=0, atol=1e-6)

    # Resume: forget one finished shard (as if the run died before writing it); only it is redone.
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["shards"]["2"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / shard_file(2)).unlink()
    kept = {s: (out / shard_file(s)).stat().st_mtime_ns for s in (0, 1, 3)}
    again = embed_collection(world_images, out, bundle=tiny_bundle, shard_size=SHARD, progress=False)
    assert (again.shards_skipped, again.shards_written, again.rows_embedded) == (report.n_shards - 1, 1, SHARD)
    assert {s: (out / shard_file(s)).stat().st_mtime_ns for s in kept} == kept, "finished shards were rewritten"
    np.testing.assert_allclose(column_matrix(_check_complete(out, n), "latent"), reference["latent"], rtol=0, atol=1e-6)

    # A finished folder needs no work at all; a different input or shard size is refused.
    done = embed_collection(world_images, out, bundle=tiny_bundle, shard_size=SHARD, progress=False)
    assert done.shards_written == 0 and done.shards_skipped == report.n_shards
    with pytest.raises(BadInputError, match="different run"):
        embed_collection(world_images, out, bundle=tiny_bundle, shard_size=SHARD + 1, progress=False)


@pytest.mark.slow
def test_worker_killed_mid_run_loses_and_duplicates_nothing(ray_local: Any, tiny_bundle: Path, world_images: Path,
                                                           reference: dict[str, Any], tmp_path: Path) -> None:
    import crashing as crashing_module
    from ray import cloudpickle

    # Ray workers cannot import test modules: ship this one by value.
    cloudpickle.register_pickle_by_value(crashing_module)
    marker = tmp_path / "crashed"
    crashing = CrashOnceEmbedder(OnnxEmbedder(str(tiny_bundle)), str(marker))
    out = tmp_path / "shards"
    report = embed_collection(world_images, out, embedder=crashing, shard_size=SHARD, unit_rows=64, progress=False)
    assert marker.exists(), "no worker died: the test did not test anything"
    n = len(reference["ids"])
    table = _check_complete(out, n)
    assert report.rows_embedded == n and report.errors == 0
    np.testing.assert_allclose(column_matrix(table, "latent"), reference["latent"], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_parquet_bytes_with_an_unreadable_row(ray_local: Any, tiny_bundle: Path, world_images: Path,
                                              reference: dict[str, Any], tmp_path: Path) -> None:
    n = 300
    blobs: list[bytes | None] = []
    for rel in reference["ids"][:n]:
        buf = io.BytesIO()
        Image.open(world_images / rel).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    blobs[7] = b"not an image"
    ids = [f"item-{i}" for i in range(n)]
    src = tmp_path / "in"
    src.mkdir()
    # two files, row groups of 64: units must follow files, row groups and shards at once
    for k, (a, b) in enumerate([(0, 130), (130, n)]):
        pq.write_table(pa.table({"id": ids[a:b], "image": pa.array(blobs[a:b], pa.binary())}),
                       src / f"part{k}.parquet", row_group_size=64)
    out = tmp_path / "shards"
    report = embed_collection(src, out, bundle=tiny_bundle, shard_size=100, unit_rows=50, progress=False)
    assert report.errors == 1
    table = _check_complete(out, n)
    assert table.column("id").to_pylist() == ids
    assert "cannot identify image" in table.column("error")[7].as_py()
    latent = column_matrix(table, "latent")
    assert np.isnan(latent[7]).all()
    good = np.arange(n) != 7
    np.testing.assert_allclose(latent[good], reference["latent"][:n][good], rtol=0, atol=1e-6)


def test_bad_inputs_get_clear_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no image files"):
        embed_collection(tmp_path / "empty", tmp_path / "o", bundle=tiny_bundle)
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "t.parquet")
    with pytest.raises(BadInputError, match="--column"):
        embed_collection(tmp_path / "t.parquet", tmp_path / "o", bundle=tiny_bundle)
    with pytest.raises(BadInputError, match="exactly one"):
        embed_collection(tmp_path / "t.parquet", tmp_path / "o")


@pytest.mark.slow
def test_cli_scale_embed_then_rerun_resumes(ray_local: Any, tiny_bundle: Path, world_images: Path,
                                            reference: dict[str, Any], tmp_path: Path) -> None:
    from ceir_ray.cli import embed_command
    from click.testing import CliRunner

    out = tmp_path / "shards"
    args = [str(world_images), str(out), "--bundle", str(tiny_bundle), "--shard-size", "1000", "--quiet"]
    first = CliRunner().invoke(embed_command, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["shards_written"] == 2 and report["rows_embedded"] == len(reference["ids"])
    np.testing.assert_allclose(column_matrix(_check_complete(out, len(reference["ids"])), "latent"),
                               reference["latent"], rtol=0, atol=1e-6)
    again = CliRunner().invoke(embed_command, args)
    assert again.exit_code == 0 and json.loads(again.output)["shards_skipped"] == 2
    bad = CliRunner().invoke(embed_command, [*args[:2], "--bundle", str(tmp_path)])
    assert bad.exit_code != 0 and "not a ceir ONNX bundle" in str(bad.exception)
