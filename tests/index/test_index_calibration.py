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

_DROP_RULE = object()  # a manifest key to leave out, as older versions wrote it


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
    # the earlier behaviour (z > 0 filter, z-margin ranking) mixes scales ("b" is narrow, "a" has a
    # confusable mode near 1): it does worse here
    old = idx.search_concepts("+a +b", 20, ranking="margin", presence="threshold")
    assert np.mean([cases["+a +b"][h.id] for h in old]) < 0.9


def _consistent(hits: list, rule: str) -> None:
    """A hit's matched, per-term present / met and P(present) tell one story."""
    for h in hits:
        assert h.presence == rule
        signed = [t for t in h.terms if t["term"][0] in "+-"]
        assert h.matched == all(t["met"] for t in signed)
        for t in h.terms:
            if t["term"][0] == "+":
                assert t["met"] == t["present"]
            elif t["term"][0] == "-":
                assert t["met"] == (not t["present"]) or (rule == "threshold" and t["z"] == 0.0)
            else:
                assert t["met"] is None
            if rule == "calibrated":
                assert t["present"] == (t["p_present"] >= 0.5)
            else:
                assert t["present"] == (t["z"] > 0)


def test_calibrated_presence_decides_what_matches() -> None:
    acts, truth = _world(0)
    idx = _index(acts, ["a", "b", "c"])
    assert idx.presence_rule == "calibrated" and idx.info()["presence_rule"] == "calibrated"
    p = idx.presence_of(idx.ids)
    # "a" has a confusable absent mode near z = 1: above z = 0, yet not present by the calibration
    doubtful = np.flatnonzero((acts[:, 0] > 0) & (acts[:, 0] < 0.5) & (p[:, 0] < 0.5))
    assert len(doubtful) > 20
    everyone = idx.search_concepts("+a", len(idx), strict=False)
    by_id = {h.id: h for h in everyone}
    for i in doubtful[:20]:
        h = by_id[int(i)]
        assert not h.matched and h.terms[0]["met"] is False and h.terms[0]["present"] is False
        assert 0 < h.terms[0]["z"] < 0.5 and h.terms[0]["p_present"] < 0.5
    _consistent(everyone, "calibrated")
    strict = idx.search_concepts("+a", len(idx) // 2)
    assert not set(doubtful.tolist()) & {h.id for h in strict}
    # exactly the items the probabilities call present (+a), and absent (-c)
    want = (p[:, 0] >= 0.5) & (p[:, 2] < 0.5)
    n_match = int(want.sum())
    hits = idx.search_concepts("+a -c", n_match)
    assert sorted(h.id for h in hits) == np.flatnonzero(want).tolist()
    assert all(h.matched for h in hits)
    _consistent(hits, "calibrated")
    # for "-c": z above 0 but P(c) < 0.5 counts as absent (the z rule would have dropped it)
    above = set(np.flatnonzero(want & (acts[:, 2] > 0)).tolist())
    assert above and above <= {h.id for h in hits}
    # the filter agrees with the truth far better than z > 0 does
    z_rule = idx.search_concepts("+a -c", len(idx), strict=False, presence="threshold")
    _consistent(z_rule, "threshold")
    z_matched = np.array([h.id for h in z_rule if h.matched])
    ok = truth["a"] & ~truth["c"]
    assert ok[np.flatnonzero(want)].mean() > 0.95 > ok[z_matched].mean()


def test_calibrated_presence_is_one_z_cut_per_concept() -> None:
    acts, _ = _world(1)
    idx = _index(acts, ["a", "b", "c"])
    assert idx.calibration is not None
    cut = idx.calibration.present_from_z()
    assert np.all(cut > 0.3)  # well above z = 0 for these rare concepts with confusable modes
    p = idx.presence_of(idx.ids)
    assert np.mean((acts >= cut[None, :]) == (p >= 0.5)) > 0.999  # up to the grid's resolution


def test_z_threshold_rule_per_index_and_per_query() -> None:
    acts, _ = _world(0)
    acts[:, 2] -= 0.5  # some items with c above the threshold are "absent" by the calibration
    idx = _index(acts, ["a", "b", "c"])
    z_ok = (acts[:, 0] > 0) & (acts[:, 2] < 0)
    old = idx.search_concepts("+a -c", 300, presence="threshold")
    assert len(old) == 300 and all(h.matched and z_ok[h.id] for h in old)
    _consistent(old, "threshold")
    loose = idx.search_concepts("+a -c", 300, strict=False, presence="threshold")
    assert all(h.matched == z_ok[h.id] for h in loose)
    # a z threshold given with the query selects the threshold rule
    thr = idx.search_concepts("+a", len(idx), strict=False, threshold=0.3)
    assert all(h.presence == "threshold" and h.matched == (acts[h.id, 0] > 0.3) for h in thr)
    assert any(h.matched for h in thr if h.terms[0]["p_present"] < 0.5)
    # per index: the old rule by default, the calibrated one on request
    idx.presence_rule = "threshold"
    assert [h.id for h in idx.search_concepts("+a -c", 50)] == [h.id for h in old[:50]]
    assert idx.search_concepts("+a -c", 5, presence="calibrated")[0].presence == "calibrated"
    # the earlier behaviour as a whole: z rule, weakest-margin ranking
    margin = idx.search_concepts("+a -c", 10, ranking="margin")
    want = np.minimum(acts[:, 0], -acts[:, 2])
    assert [h.id for h in margin] == np.argsort(-want, kind="stable")[:10].tolist()
    with pytest.raises(BadInputError, match="ranking 'fuzzy'"):
        idx.search_concepts("+a", 3, ranking="fuzzy")
    with pytest.raises(BadInputError, match="presence rule 'probable'"):
        idx.search_concepts("+a", 3, presence="probable")
    with pytest.raises(BadInputError, match="presence rule 'z'"):
        idx.presence_rule = "z"


def test_small_index_falls_back_to_margins() -> None:
    acts = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    idx = _index(acts, ["a", "b", "c"])
    assert idx.calibration is None
    cal_hits = idx.search_concepts("+a -b", 5)
    assert [h.id for h in cal_hits] == [h.id for h in idx.search_concepts("+a -b", 5, ranking="margin")]
    assert all(t["p_present"] is None for h in cal_hits for t in h.terms)
    # and "present" falls back to z > threshold, whatever the index's rule says
    everyone = idx.search_concepts("+a -b", 20, strict=False)
    _consistent(everyone, "threshold")
    assert all(h.matched == (acts[h.id, 0] > 0 and acts[h.id, 1] < 0) for h in everyone)
    assert sum(h.matched for h in everyone) == len(idx.search_concepts("+a -b", 20))
    with pytest.raises(BadInputError, match="fewer than 50"):
        idx.presence_of([0])
    with pytest.raises(BadInputError, match="too few"):
        idx.calibrate()


def test_stale_calibration_is_flagged_and_refitted_only_when_asked(tmp_path: Path) -> None:
    acts, _ = _world(0, n=2000)
    idx = _index(acts[:1000], ["a", "b", "c"])
    first = idx.calibration
    assert first is not None and first.n_fit == 1000
    idx.add(np.zeros((50, 4), np.float32), acts[1000:1050], metadata=[{"key": f"x{i}"} for i in range(50)])
    idx.search_concepts("+a", 5)
    assert idx.calibration is first and first.changed_since_fit == 50 and not first.stale()  # 5%
    idx.add(np.zeros((200, 4), np.float32), acts[1050:1250], metadata=[{"key": f"y{i}"} for i in range(200)])
    # 25% changed: stale, and said so, but no query, add or save refits it by surprise
    idx.search_concepts("+a", 5)
    idx.save(tmp_path / "ix")
    assert idx.calibration is first and first.stale() and idx.info()["calibration"]["stale"] is True
    again = ConceptIndex.load(tmp_path / "ix")  # e.g. the next `ceir index add` after a killed one
    assert again.calibration is not None and again.calibration.stale()
    assert again.calibration.changed_since_fit == 250 and again.calibration.n_fit == 1000
    again.add(np.zeros((5, 4), np.float32), acts[1250:1255], metadata=[{"key": f"z{i}"} for i in range(5)])
    again.save(tmp_path / "ix")
    assert ConceptIndex.load(tmp_path / "ix").calibration.n_fit == 1000  # still not refitted
    refit = again.calibrate()
    assert refit.n_fit == 1255 and not refit.stale() and again.info()["calibration"]["stale"] is False
    ext = idx.calibrate(acts[1250:])  # fitted elsewhere: kept however the index changes, never stale
    idx.remove(idx.ids[:400])
    idx.search_concepts("+a", 5)
    assert idx.calibration is ext and ext.source == "external" and not ext.stale()


def test_first_calibration_is_fitted_once_the_index_can_have_one() -> None:
    acts, _ = _world(0, n=200)
    idx = _index(acts[:30], ["a", "b", "c"])
    assert idx.calibration is None  # fewer than 50 items
    idx.add(np.zeros((100, 4), np.float32), acts[30:130], metadata=[{"key": f"x{i}"} for i in range(100)])
    idx.search_concepts("+a", 5)
    assert idx.calibration is not None and idx.calibration.n_fit == 130


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
    assert [h.terms for h in after] == [h.terms for h in before] and after[0].presence == "calibrated"
    assert back.info()["calibration"]["n_components"] == 3
    assert manifest["presence_rule"] == "calibrated" and back.presence_rule == "calibrated"
    idx.presence_rule = "threshold"
    idx.save(tmp_path / "ix")
    back = ConceptIndex.load(tmp_path / "ix")
    assert back.presence_rule == "threshold" and back.info() == idx.info()
    assert back.search_concepts("+a", 3)[0].presence == "threshold"


@pytest.mark.parametrize(("saved", "rule"), [({"presence_rule": _DROP_RULE}, "calibrated"),
                                             ({"presence_rule": _DROP_RULE, "presence_threshold": 0.25}, "threshold"),
                                             ({"presence_rule": "sometimes"}, None)])
def test_presence_rule_of_indexes_saved_before_it(tmp_path: Path, saved: dict[str, object], rule: str | None) -> None:
    acts, _ = _world(0, n=300)
    vdir = _index(acts, ["a", "b", "c"]).save(tmp_path / "ix")
    manifest = json.loads((vdir / persist.MANIFEST).read_text())
    manifest.update(saved)
    (vdir / persist.MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items() if v is not _DROP_RULE}))
    if rule is None:
        with pytest.raises(IncompatibleFileError, match="presence rule 'sometimes'"):
            ConceptIndex.load(tmp_path / "ix")
        return
    back = ConceptIndex.load(tmp_path / "ix")  # no rule saved: a chosen z threshold keeps the z rule
    assert back.presence_rule == rule and back.search_concepts("+a", 3)[0].presence == rule


def test_cli_concept_search_presence_flags(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from safetensors.numpy import save_file

    from ceir_sdk.cli.main import build

    acts, _ = _world(0, n=800)
    lat = np.random.default_rng(1).normal(size=(len(acts), 4)).astype(np.float32)
    emb = tmp_path / "emb.safetensors"
    save_file({"latent": lat, "concepts": acts}, str(emb), metadata={"concepts": json.dumps(["a", "b", "c"])})
    cli, runner, ix = build(), CliRunner(), str(tmp_path / "ix")
    assert runner.invoke(cli, ["index", "build", ix, "--embeddings", str(emb)]).exit_code == 0
    idx = ConceptIndex.load(ix)
    p = idx.presence_of(idx.ids)

    def search(*flags: str) -> list[dict]:
        r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+a -c", "-k", "800", "--json", *flags])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    hits = search()
    assert {h["id"] for h in hits} == set(np.flatnonzero((p[:, 0] >= 0.5) & (p[:, 2] < 0.5)).tolist())
    assert all(h["matched"] and h["presence"] == "calibrated" and all(t["met"] for t in h["terms"]) for h in hits)
    old = search("--presence", "threshold")
    assert {h["id"] for h in old} == set(np.flatnonzero((acts[:, 0] > 0) & (acts[:, 2] < 0)).tolist())
    assert {h["id"] for h in search("--threshold", "0.5")} == set(
        np.flatnonzero((acts[:, 0] > 0.5) & (acts[:, 2] < 0.5)).tolist())
    everyone = search("--no-strict")
    assert len(everyone) == 800 and sum(h["matched"] for h in everyone) == len(hits)
    r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+a -c", "-k", "2"])
    assert r.exit_code == 0, r.output
    assert "P(present) >= 0.5" in r.output and "matched" in r.output and "P=" in r.output and "met" in r.output
    r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+a", "--where", "key=none", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == [] and "--no-strict" in r.stderr, r.output
    r = runner.invoke(cli, ["index", "search", ix, "--like", "3", "-k", "2", "--presence", "threshold"])
    assert r.exit_code != 0 and "apply to --concepts" in str(r.exception)


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


def test_cli_calibrate_refits_a_stale_calibration_that_add_only_reports(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from safetensors.numpy import save_file

    from ceir_sdk.cli.main import build

    acts, _ = _world(0, n=1000)
    lat = np.random.default_rng(1).normal(size=(len(acts), 4)).astype(np.float32)
    names = json.dumps(["a", "b", "c"])
    first, more = tmp_path / "first.safetensors", tmp_path / "more.safetensors"
    save_file({"latent": lat[:700], "concepts": acts[:700]}, str(first), metadata={"concepts": names})
    save_file({"latent": lat[700:], "concepts": acts[700:]}, str(more), metadata={"concepts": names})
    cli, runner, ix = build(), CliRunner(), str(tmp_path / "ix")
    assert runner.invoke(cli, ["index", "build", ix, "--embeddings", str(first)]).exit_code == 0
    r = runner.invoke(cli, ["index", "add", ix, "--embeddings", str(more)])
    assert r.exit_code == 0, r.output
    assert f"ceir index calibrate {ix}" in r.stderr and "fitted on 700 items and 300 changed" in r.stderr
    info = json.loads(runner.invoke(cli, ["index", "info", ix, "--json"]).stdout)["calibration"]
    assert info["stale"] is True and info["n_fit"] == 700
    r = runner.invoke(cli, ["index", "calibrate", ix])
    assert r.exit_code == 0 and "Calibrated 3 concepts on 1000 items" in r.stdout, r.output
    info = json.loads(runner.invoke(cli, ["index", "info", ix, "--json"]).stdout)["calibration"]
    assert info["stale"] is False and info["n_fit"] == 1000 and info["changed_since_fit"] == 0
    r = runner.invoke(cli, ["index", "search", ix, "--concepts", "+a", "-k", "3"])
    assert r.exit_code == 0 and "calibrate" not in r.stderr
