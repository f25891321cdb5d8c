"""Label-free presence calibration: the mixture fit, calibrated ranking, persistence, compatibility."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from ceir_sdk.atomic import sha256_file
from ceir_sdk.errors import BadInputError, IncompatibleFileError
from ceir_sdk.index import ConceptIndex, parse_expression, persist
from ceir_sdk.index.calibration import CALIBRATION_FILE, PresenceCalibration, fit_mixture


def _mix(rng: np.random.Generator, present: np.ndarray, pres: tuple[float, float],
         absent: list[tuple[float, float, float]]) -> np.ndarray:
    """Activations: present items ~ N(pres), absent ones from a two-part mixture (share, mean, sd)."""
    out = np.empty(len(present))
    out[present] = rng.normal(*pres, size=int(present.sum()))
    na = int((~present).sum())
    first = rng.random(na) < absent[0][0]
    out[~present] = np.where(first, rng.normal(absent[0][1], absent[0][2], na),
                             rng.normal(absent[1][1], absent[1][2], na))
    return out


def _world(seed: int = 0, n: int = 3000) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Three concepts on different z scales, each with a confusable absent mode near its present one."""
    rng = np.random.default_rng(seed)
    truth = {"a": rng.random(n) < 0.25, "b": rng.random(n) < 0.25, "c": rng.random(n) < 0.2}
    acts = np.stack([
        _mix(rng, truth["a"], (2.5, 0.25), [(0.7, -0.8, 0.5), (0.3, 1.0, 0.3)]),
        _mix(rng, truth["b"], (0.9, 0.1), [(0.7, -0.6, 0.4), (0.3, 0.2, 0.15)]),
        _mix(rng, truth["c"], (1.8, 0.2), [(0.7, -0.7, 0.5), (0.3, 0.6, 0.3)]),
    ], axis=1).astype(np.float32)
    return acts, truth


def _index(acts: np.ndarray, concepts: list[str], n_lat: int = 4) -> ConceptIndex:
    lat = np.random.default_rng(1).normal(size=(len(acts), n_lat)).astype(np.float32)
    meta = [{"key": f"k{i}"} for i in range(len(acts))]
    return ConceptIndex.build(lat, acts, concepts, metadata=meta, progress=False)


@pytest.mark.parametrize("k", [2, 3])
def test_mixture_recovers_a_known_present_absent_split(k: int) -> None:
    rng = np.random.default_rng(0)
    present = rng.random(4000) < 0.2
    x = np.where(present, rng.normal(2.0, 0.3, 4000), rng.normal(-0.5, 0.6, 4000))
    w, mu, sd, _ = fit_mixture(x, k)
    assert abs(w[-1] - 0.2) < 0.03 and abs(mu[-1] - 2.0) < 0.1 and abs(sd[-1] - 0.3) < 0.08
    cal = PresenceCalibration.fit(x[:, None], ["x"], n_components=k)
    p = cal.presence(x[:, None])[:, 0]
    assert np.mean((p > 0.5) == present) > 0.97


def test_three_components_find_present_beside_a_bimodal_absent_side() -> None:
    rng = np.random.default_rng(2)
    present = rng.random(5000) < 0.1
    x = _mix(rng, present, (1.9, 0.2), [(0.5, -1.4, 0.35), (0.5, 0.2, 0.3)])
    cal = PresenceCalibration.fit(x[:, None], ["water"])
    assert abs(cal.weights[0, -1] - 0.1) < 0.02 and abs(cal.means[0, -1] - 1.9) < 0.1
    assert np.mean((cal.presence(x[:, None])[:, 0] > 0.5) == present) > 0.98


def test_presence_never_falls_as_the_activation_rises() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-0.5, 1.0, 1800), rng.normal(1.5, 0.15, 200)])  # narrow present, wide absent
    cal = PresenceCalibration.fit(x[:, None], ["x"])
    grid = np.linspace(-4, 8, 500)[:, None]
    lp, lq = cal.log_presence(grid, [0])
    assert np.all(np.diff(lp[:, 0]) >= -1e-9) and np.all(np.diff(lq[:, 0]) <= 1e-9)
    np.testing.assert_allclose(np.exp(lp) + np.exp(lq), 1.0, atol=1e-9)


def test_joint_log_probability_sums_weighted_terms() -> None:
    q = parse_expression("+a -b 2*c", ["a", "b", "c"])
    lp = np.log(np.array([[0.9, 0.2, 0.5]]))
    lq = np.log(1 - np.exp(lp))
    np.testing.assert_allclose(q.joint_log_probability(lp, lq), [np.log(0.9) + np.log(0.8) + 2 * np.log(0.5)])
    with pytest.raises(ValueError, match="log-probabilities"):
        q.joint_log_probability(lp[:, :2], lq[:, :2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrated_ranking_puts_items_meeting_every_term_first(seed: int) -> None:
    acts, truth = _world(seed)
    idx = _index(acts, ["a", "b", "c"])
    cases = {"+a +b": truth["a"] & truth["b"], "+a +b -c": truth["a"] & truth["b"] & ~truth["c"],
             "+b -a": truth["b"] & ~truth["a"]}
    for expr, ok in cases.items():
        hits = idx.search_concepts(expr, 20)
        assert len(hits) == 20 and all(ok[h.id] for h in hits), expr
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(h.matched is not None and len(h.terms) == len(parse_expression(expr).terms) for h in hits)
        assert all(0.0 <= t["p_present"] <= 1.0 for h in hits for t in h.terms)
    # the z-margin ranking mixes scales ("b" is narrow, "a" has a confusable mode near 1): it does worse here
    margin = np.mean([cases["+a +b"][h.id] for h in idx.search_concepts("+a +b", 20, ranking="margin")])
    assert margin < 0.9


def test_threshold_still_decides_what_matches_and_margin_is_the_old_scoring() -> None:
    acts, _ = _world(0)
    acts[:, 2] -= 0.5  # some items with c above the threshold are "absent" by the calibration
    idx = _index(acts, ["a", "b", "c"])
    strict = idx.search_concepts("+a -c", 300)
    assert len(strict) == 300 and all(h.matched and acts[h.id, 0] > 0 and acts[h.id, 2] < 0 for h in strict)
    assert all(t["met"] for h in strict for t in h.terms)
    loose = idx.search_concepts("+a -c", 300, strict=False)  # every item ranked by probability
    assert any(not h.matched for h in loose)
    assert all(h.matched == (acts[h.id, 0] > 0 and acts[h.id, 2] < 0) for h in loose)
    assert all(h.terms[1]["p_present"] < 0.5 for h in loose)
    old = idx.search_concepts("+a -c", 10, ranking="margin")
    want = np.minimum(acts[:, 0], -acts[:, 2])
    assert [h.id for h in old] == np.argsort(-want, kind="stable")[:10].tolist()
    with pytest.raises(BadInputError, match="ranking 'fuzzy'"):
        idx.search_concepts("+a", 3, ranking="fuzzy")


def test_small_index_falls_back_to_margins() -> None:
    acts = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    idx = _index(acts, ["a", "b", "c"])
    assert idx.calibration is None
    cal_hits = idx.search_concepts("+a -b", 5)
    assert [h.id for h in cal_hits] == [h.id for h in idx.search_concepts("+a -b", 5, ranking="margin")]
    assert all(t["p_present"] is None for h in cal_hits for t in h.terms)
    with pytest.raises(BadInputError, match="fewer than 50"):
        idx.presence_of([0])
    with pytest.raises(BadInputError, match="too few"):
        idx.calibrate()


def test_refit_after_bulk_changes_only() -> None:
    acts, _ = _world(0, n=2000)
    idx = _index(acts[:1000], ["a", "b", "c"])
    first = idx.calibration
    assert first is not None and first.n_fit == 1000
    idx.add(np.zeros((50, 4), np.float32), acts[1000:1050], metadata=[{"key": f"x{i}"} for i in range(50)])
    idx.search_concepts("+a", 5)
    assert idx.calibration is first and first.changed_since_fit == 50  # 5%: kept
    idx.add(np.zeros((200, 4), np.float32), acts[1050:1250], metadata=[{"key": f"y{i}"} for i in range(200)])
    idx.search_concepts("+a", 5)
    assert idx.calibration is not first and idx.calibration is not None and idx.calibration.n_fit == 1250
    ext = idx.calibrate(acts[1250:])  # fitted elsewhere: kept however the index changes
    idx.remove(idx.ids[:400])
    idx.search_concepts("+a", 5)
    assert idx.calibration is ext and ext.source == "external"


def test_calibration_round_trips_through_save_and_load(tmp_path: Path) -> None:
    acts, _ = _world(0, n=800)
    idx = _index(acts, ["a", "b", "c"])
    before = idx.search_concepts("+a +b -c", 15)
    vdir = idx.save(tmp_path / "ix")
    manifest = json.loads((vdir / persist.MANIFEST).read_text())
    assert manifest["calibration"] == CALIBRATION_FILE and CALIBRATION_FILE in manifest["files"]
    back = ConceptIndex.load(tmp_path / "ix")
    assert back.calibration is not None and idx.calibration is not None and back.calibration_note is None
    for name in ("weights", "means", "sds"):
        np.testing.assert_array_equal(getattr(back.calibration, name), getattr(idx.calibration, name))
    after = back.search_concepts("+a +b -c", 15)
    assert [h.id for h in after] == [h.id for h in before]
    assert [h.score for h in after] == pytest.approx([h.score for h in before])
    assert back.info()["calibration"]["n_components"] == 3


def _rewrite(vdir: Path, edit_manifest: dict[str, object], drop_file: bool) -> None:
    manifest = json.loads((vdir / persist.MANIFEST).read_text())
    if drop_file:
        (vdir / CALIBRATION_FILE).unlink()
        manifest["files"].pop(CALIBRATION_FILE)
    manifest.update(edit_manifest)
    manifest = {k: v for k, v in manifest.items() if v is not _DROP}
    (vdir / persist.MANIFEST).write_text(json.dumps(manifest))


_DROP = object()


def test_index_saved_without_calibration_loads_with_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    acts, truth = _world(0, n=800)
    vdir = _index(acts, ["a", "b", "c"]).save(tmp_path / "ix")
    _rewrite(vdir, {"calibration": _DROP}, drop_file=True)  # as written by ceir-sdk before calibration
    with caplog.at_level(logging.WARNING, logger="ceir_sdk.index.concept_index"):
        old = ConceptIndex.load(tmp_path / "ix")
    assert old.calibration is None and old.calibration_note and "without a presence calibration" in old.calibration_note
    assert "without a presence calibration" in caplog.text and "ranking='margin'" in caplog.text
    hits = old.search_concepts("+a +b", 10)  # fitted from the stored activations on first use
    assert old.calibration is not None and all(truth["a"][h.id] and truth["b"][h.id] for h in hits)
    newer = old.save(tmp_path / "ix")
    assert (newer / CALIBRATION_FILE).is_file()
    assert ConceptIndex.load(tmp_path / "ix").calibration_note is None


def test_unreadable_calibration_is_refused_with_the_way_out(tmp_path: Path) -> None:
    acts, _ = _world(0, n=800)
    vdir = _index(acts, ["a", "b", "c"]).save(tmp_path / "ix")
    data = json.loads((vdir / CALIBRATION_FILE).read_text())
    data["version"] = 99
    (vdir / CALIBRATION_FILE).write_text(json.dumps(data))
    with pytest.raises(IncompatibleFileError, match=r"damaged|checksum"):  # altered files are caught first
        ConceptIndex.load(tmp_path / "ix")
    # as a newer ceir-sdk would write it: consistent manifest, unknown calibration version
    manifest = json.loads((vdir / persist.MANIFEST).read_text())
    manifest["files"][CALIBRATION_FILE] = {"bytes": (vdir / CALIBRATION_FILE).stat().st_size,
                                           "sha256": sha256_file(vdir / CALIBRATION_FILE)}
    (vdir / persist.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleFileError, match=r"calibration version 99.*ignore_calibration=True"):
        ConceptIndex.load(tmp_path / "ix")
    idx = ConceptIndex.load(tmp_path / "ix", ignore_calibration=True)
    assert idx.calibration is None
    assert idx.calibrate().n_fit == 800
