"""Index building from shards (no Ray needed): sizing, recall against exact search, id lookup."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from ceir_ray import ShardSet, build_index, load_index
from ceir_ray.index import choose_factory
from ceir_ray.shards import column_matrix
from ceir_ray.synthetic import write_synthetic_shards
from click.testing import CliRunner

from ceir_sdk.errors import BadInputError


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> ShardSet:
    return write_synthetic_shards(tmp_path_factory.mktemp("shards"), 30_000, dim=32, shard_size=4_000,
                                  clusters=64, dtype="float32")


def test_factory_by_size() -> None:
    assert choose_factory(5_000, 128) == "Flat"
    assert choose_factory(500_000, 128) == "IVF512,Flat"
    assert choose_factory(10_000_000, 128) == "IVF4096_HNSW32,PQ32"


def _recall(index: faiss.Index, x: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    exact = faiss.IndexFlatL2(x.shape[1])
    exact.add(x)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))


def test_ivf_index_from_shards_finds_true_neighbours(shards: ShardSet, tmp_path: Path) -> None:
    report = build_index(shards.root, tmp_path / "ix", progress=False)
    assert report.factory == "IVF128,Flat" and report.n_vectors == 30_000 and report.train_size == 8_192
    index, info = load_index(tmp_path / "ix")
    assert index.ntotal == 30_000 and info["nprobe"] == report.nprobe
    x = column_matrix(shards.read_all(["latent"]), "latent")
    queries = x[::997]
    assert _recall(index, x, queries) >= 0.9
    # faiss ids are row numbers; the shards map them back to ids
    _, rows = index.search(queries[:3], 1)
    assert shards.ids_for(rows[:, 0]) == [f"v{r}" for r in range(0, 3 * 997, 997)]


def test_ivf_pq_index_and_atomic_resave(shards: ShardSet, tmp_path: Path) -> None:
    out = tmp_path / "ix"
    first = build_index(shards.root, out, factory="IVF64_HNSW32,PQ8", metric="cosine",
                        train_size=4_000, progress=False)
    old_file = json.loads((out / "index.json").read_text())["file"]
    index, _ = load_index(out)
    assert first.n_vectors == 30_000 and isinstance(index, faiss.IndexIVFPQ)
    x = column_matrix(shards.read_all(["latent"]), "latent")
    faiss.normalize_L2(x)
    _, found = index.search(x[:200], 1)
    assert (found[:, 0] == np.arange(200)).mean() >= 0.5  # a compressed index still finds most items
    build_index(shards.root, out, factory="Flat", progress=False)
    files = sorted(p.name for p in out.glob("*.faiss"))
    assert len(files) == 1 and files[0] != old_file and load_index(out)[0].ntotal == 30_000


def test_unfinished_shards_and_bad_options_are_refused(shards: ShardSet, tmp_path: Path) -> None:
    partial = ShardSet.open_for_writing(tmp_path / "p", fingerprint="x", n_rows=10, shard_size=4, info={})
    with pytest.raises(BadInputError, match="unfinished"):
        build_index(partial.root, tmp_path / "ix", progress=False)
    with pytest.raises(BadInputError, match="cannot build"):
        build_index(shards.root, tmp_path / "ix", factory="IVF64,PQ7", progress=False)
    with pytest.raises(BadInputError, match="space must be"):
        build_index(shards.root, tmp_path / "ix", space="pixels", progress=False)
    with pytest.raises(BadInputError, match="not a shard folder"):
        build_index(tmp_path, tmp_path / "ix", progress=False)


def test_cli_scale_index_through_the_plugin_entry_point(shards: ShardSet, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from ceir_sdk import plugins as ceir_plugins

    cli_main = importlib.import_module("ceir_sdk.cli.main")

    host = ceir_plugins.PluginHost()
    host.load_entry_points(only=["ray"])
    ceir_plugins.reset_host(host)
    monkeypatch.setattr(cli_main, "_BUILT", False)
    try:
        cli = cli_main.build()
        assert {"embed", "index"} <= set(cli.commands["scale"].commands)
        result = CliRunner().invoke(cli, ["scale", "index", str(shards.root), str(tmp_path / "ix"),
                                          "--factory", "IVF32,Flat", "--quiet"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["n_vectors"] == 30_000
    finally:
        ceir_plugins.reset_host(None)
