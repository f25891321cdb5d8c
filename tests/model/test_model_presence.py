"""Label-free presence thresholds: fitted with the model, used by explanations, saved and loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.model import CEIRModel
from ceir_sdk.model.presence import fit_presence_thresholds


def test_thresholds_separate_a_rare_concept_better_than_the_mean() -> None:
    # A concept present in 15% of images: absent ones around 0, present ones around 3.
    rng = np.random.default_rng(0)
    present = rng.random(4000) < 0.15
    z = np.where(present, rng.normal(3.0, 0.6, 4000), rng.normal(0.0, 0.6, 4000))
    z = ((z - z.mean()) / z.std()).astype(np.float32)[:, None]
    (threshold,) = fit_presence_thresholds(z, ["rare"])
    assert threshold > 0.3  # well above the mean, which most absent images straddle
    calibrated = ((z[:, 0] >= threshold) == present).mean()
    above_mean = ((z[:, 0] > 0) == present).mean()
    assert calibrated >= 0.97 and calibrated > above_mean + 0.1


def test_too_few_rows_fall_back_to_the_mean() -> None:
    np.testing.assert_array_equal(fit_presence_thresholds(np.ones((10, 3), np.float32), ["a", "b", "c"]), 0.0)


def test_explanations_use_the_fitted_thresholds(fitted: CEIRModel, world: tuple[Any, ...]) -> None:
    assert fitted.presence_thresholds is not None
    assert fitted.presence_thresholds.shape == (len(fitted.concepts),)
    (e,) = fitted.explain(features=world[0][:1])
    np.testing.assert_array_equal(e.present, e.activations >= fitted.presence_thresholds)
    shown = {c for c, _ in e.top_present(24)}
    assert shown <= {c for c, p in zip(e.concepts, e.present, strict=True) if p}


def test_thresholds_survive_save_and_load_and_old_models_fall_back(fitted: CEIRModel, tmp_path: Path) -> None:
    out = fitted.save(tmp_path / "m")
    loaded = CEIRModel.load(out)
    assert loaded.presence_thresholds is not None
    np.testing.assert_array_equal(loaded.presence_thresholds, fitted.presence_thresholds)
    # A model saved before presence calibration has no "presence" entry: z > 0 then.
    cfg = json.loads((out / "config.json").read_text())
    del cfg["presence"]
    (out / "config.json").write_text(json.dumps(cfg))
    old = CEIRModel.load(out)
    assert old.presence_thresholds is None
    x = np.zeros((1, fitted.feature_dim), np.float32)
    (e,) = old.explain(features=x + 0.1)
    np.testing.assert_array_equal(e.present, e.activations > 0)
