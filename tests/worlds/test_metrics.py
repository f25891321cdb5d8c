from __future__ import annotations

import numpy as np
import pytest

from ceir_sdk.metrics import clustering_scores


def test_perfect_and_permuted() -> None:
    y = np.repeat(np.arange(5), 20)
    perm = np.array([3, 0, 4, 1, 2])[y]
    for pred in (y, perm):
        s = clustering_scores(y, pred)
        assert s == pytest.approx({"nmi": 1.0, "acc": 1.0, "ari": 1.0})


def test_known_values() -> None:
    # Worked by hand: MI = (2/3) ln 2, H(y) = ln 2, H(p) = ln 3; ARI = (2 - 1.2) / (4.5 - 1.2).
    y = [0, 0, 0, 1, 1, 1]
    p = [0, 0, 1, 1, 2, 2]
    s = clustering_scores(y, p)
    assert s["acc"] == pytest.approx(4 / 6)
    assert s["ari"] == pytest.approx(0.24242424, abs=1e-6)
    assert s["nmi"] == pytest.approx((2 / 3) * np.log(2) / ((np.log(2) + np.log(3)) / 2))


def test_random_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 5000)
    s = clustering_scores(y, rng.integers(0, 10, 5000))
    assert s["nmi"] < 0.02 and abs(s["ari"]) < 0.01 and s["acc"] < 0.15


def test_length_mismatch() -> None:
    with pytest.raises(ValueError):
        clustering_scores([0, 1], [0])
