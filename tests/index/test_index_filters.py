"""Filtered searches (issue 21): a repeated filter is not resolved by another SQLite scan, the
cached ids follow every change, and the bitmap selector finds what the hash selector found."""

from __future__ import annotations

import numpy as np
import pytest

from ceir_sdk.index import ConceptIndex
from ceir_sdk.index.vectors import VectorStore


def _index(n: int = 3000, factory: str | None = None) -> ConceptIndex:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    meta = [{"key": f"k{i}", "half": i % 2, "tag": "rare" if i % 100 == 0 else "common"} for i in range(n)]
    return ConceptIndex.build(x, metadata=meta, factory=factory, progress=False)


def _selects(idx: ConceptIndex) -> list[str]:
    seen: list[str] = []
    idx._meta.conn.set_trace_callback(lambda sql: seen.append(sql) if "json_extract" in sql else None)
    return seen


@pytest.mark.parametrize("factory", [None, "IVF16,Flat"])
def test_a_repeated_filter_is_not_scanned_again(factory: str | None) -> None:
    idx = _index(factory=factory)
    q = np.random.default_rng(1).normal(size=(1, 16)).astype(np.float32)
    seen = _selects(idx)
    first = idx.search(q, 5, where={"half": 1})[0]
    for _ in range(5):
        again = idx.search(q, 5, where={"half": 1})[0]
        assert [h.id for h in again] == [h.id for h in first]
    assert len(seen) == 1 and all(h.id % 2 == 1 for h in first)
    idx.search(q, 5, where={"tag": "rare"})
    idx.search(q, 5, where={"half": 1.0})  # a float is another parameter: its own query
    assert len(seen) == 3


def test_cached_filters_follow_adds_and_removes() -> None:
    idx = _index()
    q = np.zeros((1, 16), np.float32)
    assert len(idx.search(q, 100, where={"tag": "rare"})[0]) == 30
    new = idx.add(np.zeros((2, 16), np.float32), metadata=[{"key": "n1", "tag": "rare"}, {"key": "n2"}])
    hits = idx.search(q, 100, where={"tag": "rare"})[0]
    assert len(hits) == 31 and hits[0].id == int(new[0])  # the zero vector is the nearest
    idx.remove([int(new[0])])
    assert int(new[0]) not in {h.id for h in idx.search(q, 100, where={"tag": "rare"})[0]}
    assert len(idx._meta.filter_ids({"tag": "rare"})) == 30


def test_bitmap_selector_matches_the_hash_selector() -> None:
    from ceir_sdk._faiss import faiss

    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 8)).astype(np.float32)
    store = VectorStore.create(8, "l2", "IVF32,Flat")
    store.train(x)
    ids = np.arange(4000, dtype=np.int64) * 7 + 3  # sparse, non-zero-based ids
    store.add(ids, x)
    allowed = np.sort(rng.choice(ids, 2500, replace=False))
    q = rng.normal(size=(20, 8)).astype(np.float32)
    _, got = store.search(q, 10, allowed=allowed, nprobe=32)
    sel = faiss.IDSelectorBatch(len(allowed), faiss.swig_ptr(allowed))
    _, want = store.index.search(q, 10, params=faiss.SearchParametersIVF(sel=sel, nprobe=32))
    np.testing.assert_array_equal(got, want)
    assert np.isin(got, allowed).all()
