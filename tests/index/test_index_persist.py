from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from index_helpers import item_vectors, write_cli_inputs

from ceir_sdk.errors import IncompatibleFileError
from ceir_sdk.index import ConceptIndex, persist


def _small(n: int = 200) -> ConceptIndex:
    ids = np.arange(n)
    lat, acts = item_vectors(ids)
    return ConceptIndex.build(lat, acts, [f"c{i}" for i in range(acts.shape[1])], ids=ids,
                              metadata=[{"key": f"k{i}", "tag": i % 5} for i in ids], progress=False)


def _assert_items_true(idx: ConceptIndex, sample: int = 200) -> None:
    """Every item's vector, activations and metadata are the ones its id determines."""
    idx.check()
    ids = idx.ids
    pick = np.sort(np.random.default_rng(0).choice(ids, size=min(sample, len(ids)), replace=False))
    lat, acts = item_vectors(pick)
    np.testing.assert_allclose(idx.vectors_of(pick), lat, atol=1e-6)
    np.testing.assert_allclose(idx.activations_of(pick), acts)
    assert [r["key"] for r in idx.get(pick)] == [f"k{i}" for i in pick]


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    idx = _small()
    idx.remove([3, 4])
    idx.presence_threshold = 0.25
    idx.save(tmp_path / "ix")
    back = ConceptIndex.load(tmp_path / "ix")
    assert back.info() == idx.info()
    _assert_items_true(back)
    q = item_vectors(np.array([7]))[0]
    assert [h.id for h in back.search(q, 5)[0]] == [h.id for h in idx.search(q, 5)[0]]
    assert back.search_concepts("+c1 -c2", 5, where={"tag": 1})[0].fields["tag"] == 1


def test_versions_are_kept_and_loadable(tmp_path: Path) -> None:
    root = tmp_path / "ix"
    idx = _small()
    idx.save(root)
    idx.add(*item_vectors(np.array([1000])), ids=[1000], metadata=[{"key": "k1000"}])
    idx.save(root)
    idx.remove([1000])
    idx.save(root)
    assert persist.versions(root) == [2, 3]  # the current one and the one before
    assert len(ConceptIndex.load(root, version=2)) == 201
    assert len(ConceptIndex.load(root)) == 200
    with pytest.raises(IncompatibleFileError, match="does not exist"):
        ConceptIndex.load(root, version=1)


def test_damage_is_detected(tmp_path: Path) -> None:
    root = tmp_path / "ix"
    _small().save(root)
    vdir = root / persist.read_pointer(root)["version"]
    with open(vdir / "arrays.safetensors", "r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(IncompatibleFileError, match="checksum"):
        ConceptIndex.load(root)
    manifest = json.loads((vdir / "manifest.json").read_text())
    manifest["format_version"] = 99
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleFileError, match=r"format version 99.*Upgrade"):
        ConceptIndex.load(root)
    with pytest.raises(IncompatibleFileError, match="no saved index"):
        ConceptIndex.load(tmp_path / "nothing-here")


def test_count_mismatch_refused(tmp_path: Path) -> None:
    root = tmp_path / "ix"
    idx = _small()
    idx._meta.conn.execute("DELETE FROM items WHERE id = 1")  # simulate a torn write of one store
    idx.save(root)
    with pytest.raises(IncompatibleFileError, match="inconsistent"):
        ConceptIndex.load(root)


def test_interrupted_save_leaves_previous_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ix"
    idx = _small()
    idx.save(root)
    idx.add(*item_vectors(np.array([500])), ids=[500], metadata=[{"key": "k500"}])

    def die(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(persist, "atomic_write_text", die)  # dies after the rename, before CURRENT
    with pytest.raises(KeyboardInterrupt):
        idx.save(root)
    monkeypatch.undo()
    assert len(ConceptIndex.load(root)) == 200
    idx.save(root)  # the next save cleans the debris and moves on
    assert len(ConceptIndex.load(root)) == 201
    assert not list(root.glob(".tmp-*"))


def _renamed_but_not_current(root: Path) -> bool:
    if not (root / persist.POINTER).exists():
        return bool(persist.versions(root))
    return max(persist.versions(root)) > int(persist.read_pointer(root)["version"][1:])


def test_sigkill_during_saves_never_breaks_the_index(tmp_path: Path) -> None:
    """A child saves in a loop; we SIGKILL it at random moments, many times, and every time the
    index on disk must load, be consistent, hold true items, and be no older than the last
    save the child reported complete."""
    root = tmp_path / "ix"
    script = Path(__file__).with_name("_save_loop.py")
    rnd = random.Random(7)
    deadline = time.monotonic() + 20
    reps = mid_save = 0
    last_generation = -1
    while reps < 40 and (reps < 12 or time.monotonic() < deadline):
        child = subprocess.Popen([sys.executable, str(script), str(root), str(reps)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rnd.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        out = child.communicate()[0]
        reps += 1
        saved = [int(line.split()[1]) for line in out.splitlines() if line.startswith("saved")]
        if list(root.glob(".tmp-*")) or _renamed_but_not_current(root):
            mid_save += 1
        if not (root / persist.POINTER).exists():
            assert not saved
            continue
        idx = ConceptIndex.load(root)
        _assert_items_true(idx)
        if saved:
            assert idx.generation >= saved[-1]
            last_generation = saved[-1]
        assert idx.generation >= last_generation
    print(f"{reps} kills, {mid_save} inside a save")
    assert reps >= 12
    assert mid_save >= 3, f"only {mid_save} of {reps} kills landed inside a save; the test lost its teeth"


def test_cli_build_search_cluster_info(tmp_path: Path) -> None:
    from ceir_sdk.cli.main import build

    ids = np.arange(300)
    _, acts = item_vectors(ids)
    emb, meta = write_cli_inputs(tmp_path, ids, [{"key": f"k{i}", "tag": int(i % 3)} for i in ids])
    cli = build()
    runner = CliRunner()
    ix = str(tmp_path / "ix")
    r = runner.invoke(cli, ["index", "build", ix, "--embeddings", str(emb), "--metadata", str(meta)])
    assert r.exit_code == 0, r.output
    assert "Built 300 items (Flat, 6 concepts)" in r.output
    r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+c1 -c2", "-k", "3", "--where", "tag=1", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert len(hits) == 3 and all(h["fields"]["tag"] == 1 for h in hits)
    assert all(h["matched"] and h["terms"][0]["p_present"] >= 0.5 > h["terms"][1]["p_present"] for h in hits)
    r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+c1 -c2", "-k", "3", "--presence", "threshold",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert all(acts[h["id"], 1] > 0 and acts[h["id"], 2] <= 0 for h in json.loads(r.output))
    r = runner.invoke(cli, ["index", "search", ix, "--like", "5", "-k", "2"])
    assert r.exit_code == 0 and "because:" in r.output, r.output
    r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+zebra"])
    assert r.exit_code != 0 and "unknown concept 'zebra'" in str(r.exception)
    r = runner.invoke(cli, ["index", "cluster", ix, "-k", "3", "--json", "--out", str(tmp_path / "a.jsonl")])
    assert r.exit_code == 0, r.output
    assert sum(c["size"] for c in json.loads(r.output)["clusters"]) == 300
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 300
    r = runner.invoke(cli, ["index", "remove", ix, "1", "2"])
    assert r.exit_code == 0 and "holds 298" in r.output
    r = runner.invoke(cli, ["index", "info", ix, "--json"])
    info = json.loads(r.output)
    assert info["count"] == 298 and info["version"] == "v000002" and len(info["concepts"]) == 6
    r = runner.invoke(cli, ["index", "info", ix])
    assert r.exit_code == 0 and max(len(line) for line in r.output.splitlines()) < 400, r.output
    assert "over 6 concepts; --json lists each" in r.output


def test_saved_files_are_readable_by_other_accounts(tmp_path: Path) -> None:
    """An index built by one account is searched by a service: no file may come out 0600."""
    import stat

    previous = os.umask(0o022)
    try:
        _small().save(tmp_path / "idx")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "idx").rglob("*") if p.is_file()}
    assert "arrays.safetensors" in modes
    assert {name: mode for name, mode in modes.items() if mode != 0o644} == {}


def test_cli_set_stores_fields_with_every_item_added(tmp_path: Path) -> None:
    from ceir_sdk.cli.main import build
    from ceir_sdk.index import ConceptIndex

    ids = np.arange(60)
    emb, meta = write_cli_inputs(tmp_path, ids, [{"key": f"k{i}", "tag": int(i % 3)} for i in ids])
    cli, runner, ix = build(), CliRunner(), str(tmp_path / "ix")
    r = runner.invoke(cli, ["index", "build", ix, "--embeddings", str(emb), "--metadata", str(meta),
                            "--set", "label=zebra", "--set", "batch=3", "--set", "tag=7"])
    assert r.exit_code == 0, r.output
    records = ConceptIndex.load(ix).get(np.arange(60))
    assert all(rec["fields"] == {"label": "zebra", "batch": 3, "tag": 7} for rec in records)  # --set wins
    assert [rec["key"] for rec in records[:2]] == ["k0", "k1"]
    r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+c1", "-k", "3", "--where", "label=zebra"])
    assert r.exit_code == 0 and "score=" in r.output, r.output
    refused = runner.invoke(cli, ["index", "build", str(tmp_path / "ix2"), "--embeddings", str(emb),
                                  "--set", "key=x"])
    assert refused.exit_code == 2 and "--set cannot change 'key'" in refused.output
