from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from index_helpers import item_vectors

from ceir_sdk.errors import BadInputError, IncompatibleFileError
from ceir_sdk.index import ConceptIndex, FunctionEncoder, Shard, UnknownConceptError, choose_factory


def _build(c: dict[str, Any], **kw: Any) -> ConceptIndex:
    return ConceptIndex.build(c["latents"], c["activations"], c["concepts"], metadata=c["metadata"],
                              progress=False, **kw)


def test_import_pulls_no_torch() -> None:
    code = "import sys, ceir_sdk.index, ceir_sdk.cli.index_cmd; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_factory_chosen_by_size() -> None:
    assert choose_factory(5_000, 128) == "Flat"
    assert choose_factory(1_000_000, 128) == "IVF4096,Flat"
    assert choose_factory(50_000_000, 128).startswith("IVF") and "PQ32" in choose_factory(50_000_000, 128)


def test_vector_search_finds_self_and_explains(collection: dict[str, Any]) -> None:
    idx = _build(collection)
    assert idx.factory == "Flat" and len(idx) == 600
    hits = idx.search(collection["latents"][:3], k=5, query_concepts=collection["activations"][:3])
    assert [h[0].id for h in hits] == [0, 1, 2]
    top = hits[0][0]
    assert top.key == "img0" and top.path == "/data/0.png" and top.fields["n"] == 0
    assert top.score == pytest.approx(0.0, abs=1e-3)
    # the explanation of a self-match is the item's strongest shared concepts, largest product first
    a = collection["activations"][0]
    expected = collection["concepts"][int(np.argmax(a * a))]
    assert top.concepts[0][0] in (expected, f"NOT {expected}")
    assert [v for _, v in top.concepts] == sorted((v for _, v in top.concepts), reverse=True)


def test_metadata_filters_restrict_every_query(collection: dict[str, Any]) -> None:
    idx = _build(collection)
    q = collection["latents"][:4]
    for hits in idx.search(q, k=10, where={"split": "test", "n": {"$lt": 300}}):
        assert len(hits) == 10
        assert all(h.fields["split"] == "test" and h.fields["n"] < 300 for h in hits)
    hits = idx.search(q[:1], k=10, where={"key": ["img5", "img7"]})[0]
    assert sorted(h.id for h in hits) == [5, 7]  # fewer than k allowed: all of them, no padding
    hits = idx.search_concepts("+striped", 10, where={"group": {"$ne": 0}})
    assert all(h.fields["group"] != 0 for h in hits)
    with pytest.raises(BadInputError, match="operator"):
        idx.search(q[:1], k=3, where={"n": {"$regex": "x"}})
    with pytest.raises(BadInputError, match="field name"):
        idx.search(q[:1], k=3, where={"n') OR 1=1 --": 1})


def test_concept_queries_respect_must_and_must_not(collection: dict[str, Any]) -> None:
    idx = _build(collection)
    acts, col = collection["activations"], {c: i for i, c in enumerate(collection["concepts"])}
    # the earlier behaviour: z above / below 0, weakest-margin scoring
    hits = idx.search_concepts('+striped -water 2*"red fur"', k=20, ranking="margin", presence="threshold")
    assert len(hits) == 20
    for h in hits:
        assert acts[h.id, col["striped"]] > 0 and acts[h.id, col["water"]] <= 0
        assert [c for c, _ in h.concepts] == ["striped", "NOT water", "red fur"]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    best = np.minimum(acts[:, col["striped"]], -acts[:, col["water"]]) + 2 * acts[:, col["red fur"]]
    ok = (acts[:, col["striped"]] > 0) & (acts[:, col["water"]] <= 0)
    assert hits[0].id == int(np.flatnonzero(ok)[np.argmax(best[ok])])


@pytest.mark.parametrize(("call", "match"), [
    (lambda i, q: i.search_concepts("+zebra", 3), "unknown concept 'zebra'"),
    (lambda i, q: i.search_concepts("  ", 3), "empty concept expression"),
    (lambda i, q: i.search(q[:, :5], 3), "dimension 5.*16-d"),
    (lambda i, q: i.search(q, 601), "k=601 but the index holds only 600"),
    (lambda i, q: i.search(q, 0), "positive integer"),
    (lambda i, q: i.search_concepts("+striped", 1000), "k=1000"),
    (lambda i, q: i.search(np.full((1, 16), np.nan), 3), "NaN"),
    (lambda i, q: i.search_like(99999, 3), "not in the index"),
    (lambda i, q: i.search_like(0, 3, add=["snow"]), "needs the model.*--model.*encoder="),
    (lambda i, q: i.search_text("a zebra", 3), "needs the model"),
])
def test_malformed_queries_give_clear_errors(collection: dict[str, Any], call: Any, match: str) -> None:
    idx = _build(collection)
    with pytest.raises(BadInputError, match=match):
        call(idx, collection["latents"][:1])


def test_unknown_concept_error_type(collection: dict[str, Any]) -> None:
    with pytest.raises(UnknownConceptError):
        _build(collection).search_concepts("+striped +zebra", 3)


def test_add_remove_keep_vectors_and_metadata_in_step() -> None:
    idx = ConceptIndex(16, [f"c{i}" for i in range(6)])
    rng = np.random.default_rng(1)
    live: set[int] = set()
    next_id = 0
    for step in range(30):
        if step % 3 != 2 or not live:
            n = int(rng.integers(1, 40))
            ids = np.arange(next_id, next_id + n)
            next_id += n
            lat, acts = item_vectors(ids)
            idx.add(lat, acts, ids=ids, metadata=[{"key": f"k{i}"} for i in ids])
            live |= set(ids.tolist())
        else:
            drop = rng.choice(sorted(live), size=min(len(live), int(rng.integers(1, 20))), replace=False)
            assert idx.remove(drop) == len(drop)
            live -= set(drop.tolist())
        idx.check()
        assert set(idx.ids.tolist()) == live
    ids = np.array(sorted(live))
    lat, acts = item_vectors(ids)
    np.testing.assert_allclose(idx.vectors_of(ids), lat, atol=1e-6)
    np.testing.assert_allclose(idx.activations_of(ids), acts)
    assert [r["key"] for r in idx.get(ids)] == [f"k{i}" for i in ids]


def test_failed_add_or_remove_changes_nothing(collection: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    idx = _build(collection)
    before = (idx.generation, len(idx))
    with pytest.raises(BadInputError, match="already in the index"):
        idx.add(collection["latents"][:2], collection["activations"][:2], ids=[0, 10_000])
    with pytest.raises(BadInputError, match="duplicate"):
        idx.add(collection["latents"][:2], collection["activations"][:2], ids=[10_000, 10_001],
                metadata=[{"key": "img0"}, {}])  # key clash: the SQLite insert fails, faiss is untouched
    with pytest.raises(BadInputError, match="not in the index"):
        idx.remove([1, 2, 99_999])

    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("disk on fire")

    assert idx._store is not None
    monkeypatch.setattr(idx._store, "add", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        idx.add(collection["latents"][:1], collection["activations"][:1], ids=[20_000], metadata=[{"key": "new"}])
    monkeypatch.setattr(idx._store, "remove", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        idx.remove([3])
    assert (idx.generation, len(idx)) == before
    idx.check()  # metadata rolled back with the failed vector write
    assert idx.get([3])[0]["key"] == "img3"


def test_ivf_build_tunes_and_filters_and_removes() -> None:
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(50, 8)).astype(np.float32) * 4
    x = centers[rng.integers(0, 50, 12_000)] + rng.normal(size=(12_000, 8)).astype(np.float32)
    idx = ConceptIndex.build(x, metadata=[{"even": i % 2 == 0} for i in range(len(x))], progress=False)
    assert idx.factory.startswith("IVF") and idx.tuning["tuned"]
    assert idx.tuning["recall_vs_exhaustive"] >= 0.97
    exact = ConceptIndex.build(x, factory="Flat", progress=False, tune=False)
    q = x[:50] + 0.1
    got = idx.search(q, 10)
    truth = exact.search(q, 10)
    recall = np.mean([len({h.id for h in g} & {h.id for h in t}) / 10 for g, t in zip(got, truth)])
    assert recall >= 0.9
    for hits in idx.search(q, 10, where={"even": True}):
        assert len(hits) == 10 and all(h.id % 2 == 0 for h in hits)
    assert idx.remove(np.arange(0, 12_000, 3)) == 4000
    idx.check()
    assert all(h.id % 3 for h in idx.search(q, 10)[0])


def test_hnsw_factory_supports_removal_by_rebuild() -> None:
    x, _ = item_vectors(np.arange(500))
    idx = ConceptIndex.build(x, factory="HNSW16", progress=False)
    idx.remove([0, 1, 2])
    idx.check()
    assert 0 not in {h.id for h in idx.search(x[:1], 5)[0]}
    with pytest.raises(BadInputError, match="index factory string"):
        ConceptIndex.build(x, factory="NoSuchIndex42", progress=False)


def test_build_from_shards_matches_one_shot() -> None:
    ids = np.arange(3000)
    lat, acts = item_vectors(ids)
    shards = [Shard(lat[s:s + 700], acts[s:s + 700], ids[s:s + 700]) for s in range(0, 3000, 700)]
    idx = ConceptIndex.from_shards(iter(shards), 16, [f"c{i}" for i in range(6)], expected_size=3000,
                                   factory="IVF16,Flat", progress=False)
    idx.check()
    assert len(idx) == 3000
    np.testing.assert_allclose(idx.activations_of([2999]), acts[2999:])


def test_search_like_with_concept_edits_uses_the_latent_encoder(collection: dict[str, Any]) -> None:
    proj = collection["proj"]
    enc = FunctionEncoder(collection["concepts"], concept_vector=lambda a: a @ proj)
    idx = _build(collection, encoder=enc)
    item = 0  # group 0: striped, not water
    plain = idx.search_like(item, 10)
    assert item not in {h.id for h in plain}
    assert np.mean([collection["group"][h.id] == 0 for h in plain]) >= 0.8
    edited = idx.search_like(item, 10, add=["water"], remove=["striped"])
    acts, col = collection["activations"], {c: i for i, c in enumerate(collection["concepts"])}
    # after the edit the neighbours show water and lack stripes, and say so
    assert np.mean([acts[h.id, col["water"]] > 0 for h in edited]) >= 0.8
    assert np.mean([acts[h.id, col["striped"]] < 0 for h in edited]) >= 0.8
    assert any(c in ("water", "NOT striped") for h in edited for c, _ in h.concepts)
    with pytest.raises(BadInputError, match="both added and removed"):
        idx.search_like(item, 5, add=["water"], remove=["water"])


def test_text_and_image_queries_go_through_the_encoder(collection: dict[str, Any]) -> None:
    acts, proj = collection["activations"], collection["proj"]
    water = np.where(np.array(collection["concepts"]) == "water", 3.0, -1.0).astype(np.float32)[None, :]
    enc = FunctionEncoder(collection["concepts"], texts=lambda t: (np.repeat(water, len(t), 0),
                                                                   np.repeat(water @ proj, len(t), 0)),
                          images=lambda ims: (acts[ims], acts[ims] @ proj))
    idx = _build(collection)
    hits = idx.search_text(["a lake"], 10, encoder=enc)[0]
    assert np.mean([collection["group"][h.id] == 1 for h in hits]) >= 0.8
    assert hits[0].concepts[0][0] == "water"
    hits = idx.search_images([5], 1, encoder=enc)[0]
    assert hits[0].id == 5


def test_cluster_names_follow_concepts(collection: dict[str, Any]) -> None:
    idx = _build(collection)
    res = idx.cluster(3, seed=0)
    assert sorted(res.sizes) == [200, 200, 200] or min(res.sizes) > 150
    names = {n.split(",")[0] for n in res.names}
    assert names == {"striped", "water", "grass"}
    for c in range(3):
        members = res.ids[res.assignment == c]
        group = np.bincount(collection["group"][members]).argmax()
        assert res.names[c].startswith(["striped", "water", "grass"][group])
    with pytest.raises(BadInputError, match="cannot make"):
        idx.cluster(5, where={"key": ["img1", "img2"]})


def test_check_detects_disagreement(collection: dict[str, Any]) -> None:
    idx = _build(collection)
    idx._meta.conn.execute("DELETE FROM items WHERE id = 5")
    with pytest.raises(IncompatibleFileError, match="metadata holds 599 rows"):
        idx.check()


@pytest.mark.parametrize(("n", "factory"), [(100, "IVF256,Flat"), (200, "IVF4,PQ4")])
def test_too_few_training_vectors_is_a_clear_error(n: int, factory: str) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(BadInputError, match=rf"cannot train the {factory} index on {n} vectors.*'Flat'"):
        ConceptIndex.build(rng.normal(size=(n, 16)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32),
                           ["a", "b", "c"], factory=factory, progress=False)


def test_remove_refuses_fractional_ids() -> None:
    ids = np.arange(10)
    lat, acts = item_vectors(ids)
    idx = ConceptIndex.build(lat, acts, [f"c{i}" for i in range(acts.shape[1])], ids=ids, progress=False)
    with pytest.raises(BadInputError, match="ids must be integers"):
        idx.remove([3.7])
    assert len(idx) == 10 and idx.remove(np.array([3.0])) == 1 and 3 not in idx.ids


def test_a_mistyped_concept_in_an_edit_gets_suggestions(collection: dict[str, Any]) -> None:
    idx = _build(collection)
    name = idx.concepts[0]
    with pytest.raises(UnknownConceptError, match=rf"concept '{name[:-1]}' in the edit\. Did you mean '{name}'"):
        idx.edit_concepts(idx.activations_of(idx.ids[:1]), add=[name[:-1]])
