"""The presence calibration fitted for all concepts at once (issue 21): the same EM as the
per-concept reference fit_mixture, and on world activations the same present-from z cut-offs
within 0.05 z."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.index import calibration
from ceir_sdk.index.calibration import PresenceCalibration, fit_mixture, fit_mixtures


def _per_concept(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fit as it was before: fit_mixture on each column in turn."""
    fits = [fit_mixture(a[:, j].astype(np.float64)) for j in range(a.shape[1])]
    return (np.stack([f[0] for f in fits]), np.stack([f[1] for f in fits]), np.stack([f[2] for f in fits]),
            np.array([f[3] for f in fits]))


def _synthetic(n: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    share = rng.uniform(0.02, 0.4, c)
    present = rng.random((n, c)) < share
    absent = np.where(rng.random((n, c)) < 0.7, rng.normal(-0.6, 0.5, (n, c)), rng.normal(0.4, 0.3, (n, c)))
    return np.where(present, rng.normal(rng.uniform(1, 3, c), 0.3, (n, c)), absent).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_vectorised_em_on_raw_values_is_the_per_concept_em(threads: int) -> None:
    a = _synthetic(500, 12)
    w, mu, sd, ll = fit_mixtures(a, bins=None, threads=threads)
    rw, rmu, rsd, rll = _per_concept(a)
    for got, want in ((w, rw), (mu, rmu), (sd, rsd), (ll, rll)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_binned_em_keeps_the_cut_offs_on_synthetic_concepts() -> None:
    a = _synthetic(2000, 12, seed=1)
    names = [f"c{j}" for j in range(a.shape[1])]
    new = PresenceCalibration.fit(a, names)
    old = PresenceCalibration(names, *_per_concept(a)[:3], len(a))  # the fit as it was
    _assert_same_cut_offs(old, new, a)


def test_large_index_fits_a_seeded_bounded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration, "MAX_FIT_SAMPLES", 1000)
    a = _synthetic(5000, 4, seed=2)
    names = list("abcd")
    one, two = PresenceCalibration.fit(a, names, seed=3), PresenceCalibration.fit(a, names, seed=3)
    np.testing.assert_array_equal(one.means, two.means)
    assert one.n_fit == 5000  # the items it stands for, not the sample
    rows = np.sort(np.random.default_rng(3).choice(5000, 1000, replace=False))
    np.testing.assert_array_equal(one.means, PresenceCalibration.fit(a[rows], names).means)
    assert not np.array_equal(one.means, PresenceCalibration.fit(a, names, seed=4).means)


def _assert_same_cut_offs(old: PresenceCalibration, new: PresenceCalibration, a: np.ndarray) -> None:
    """Present-from z within 0.05 for every concept, except one whose P(present) never clearly
    reaches 0.5 under either fit (its peak within 0.01 of it: present nowhere or barely, either way)."""
    t_old, t_new = old.present_from_z(), new.present_from_z()
    for j in range(len(t_old)):
        if np.isfinite(t_old[j]) and np.isfinite(t_new[j]):
            assert abs(t_new[j] - t_old[j]) <= 0.05, (old.concepts[j], t_old[j], t_new[j])
        elif np.isfinite(t_old[j]) or np.isfinite(t_new[j]):
            peaks = [float(np.exp(cal._envelope(j)[1].max())) for cal in (old, new)]
            assert all(abs(p - 0.5) < 0.01 for p in peaks), (old.concepts[j], t_old[j], t_new[j], peaks)
    agree = (old.presence(a) >= 0.5) == (new.presence(a) >= 0.5)
    assert agree.mean() >= 0.998


@pytest.fixture
def world_backbone() -> Iterator[object]:
    pytest.importorskip("ceir_open_clip")
    from ceir_open_clip import plugin
    from ceir_open_clip.world_model import checkpoint_path

    if not checkpoint_path().is_file():
        pytest.skip("the ceir-world checkpoint is not present")
    host = ceir_plugins.PluginHost()
    host.register(plugin, name="open-clip")
    ceir_plugins.reset_host(host)
    yield ceir_plugins.get_backbone("open-clip:ceir-world")
    ceir_plugins.reset_host(None)


@pytest.mark.slow
def test_world_thresholds_within_005_z_of_the_per_concept_fit(world_backbone: object) -> None:
    """World activations (world CLIP image-concept cosines, z-scored on a training split, as
    benchmarks/index_bench.py does without a fitted model): the fit that now runs, binned and
    vectorised, against the per-concept EM it replaces."""
    from ceir_sdk.model.world_concepts import WORLD_CONCEPT_TEMPLATES, oracle_concepts
    from ceir_sdk.worlds import World

    bb: object = world_backbone
    world = World("world10", image_size=32, seed=0)
    train = next(world.batches(600, split="train", batch_size=600)).images
    test = np.concatenate([b.images for b in world.batches(1000, split="test", batch_size=500)])
    concepts = oracle_concepts(world)
    text = sum(bb.encode_texts([t.format(c) for c in concepts]) for t in WORLD_CONCEPT_TEMPLATES)  # type: ignore[attr-defined]
    text = text / np.linalg.norm(text, axis=1, keepdims=True)

    def cosines(images: np.ndarray) -> np.ndarray:
        f = bb.encode_images(images, progress=False)  # type: ignore[attr-defined]
        return (f / np.linalg.norm(f, axis=1, keepdims=True)) @ text.T

    ref = cosines(train)
    a = ((cosines(test) - ref.mean(0)) / (ref.std(0) + 1e-6)).astype(np.float32)
    new = PresenceCalibration.fit(a, concepts)
    # the fit as it was: per-concept EM on the raw values, here through fit_mixtures(bins=None),
    # which the first test shows to be that same EM (and is much faster than the Python loop)
    old = PresenceCalibration(concepts, *fit_mixtures(a, bins=None)[:3], len(a))
    _assert_same_cut_offs(old, new, a)
