"""Choosing the backend and precision by measurement (issue 24): `ceir tune`, the cache and
``Runtime(backend="auto", precision="auto")``, on a real bundle with real sessions. Timings come
from an injected timer, so the choice these tests expect does not depend on the machine's load;
agreement is always measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from ceir_onnx.runtime import Runtime
from ceir_onnx.runtime import tune as tuning
from ceir_onnx.runtime.backends import installed_backends
from ceir_onnx.runtime.tune import MIN_COSINE, lookup, record, tune
from click.testing import CliRunner


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tune.json"
    monkeypatch.setenv("CEIR_TUNE_CACHE", str(path))
    return path


def timer_from(seconds: dict[str, float]) -> Any:
    """A timer that runs each path once (it must run) and reports the given seconds."""
    calls: list[str] = []

    def timer(label: str, run: Any) -> float:
        run()
        calls.append(label)
        return seconds[label]

    timer.calls = calls  # type: ignore[attr-defined]
    return timer


def test_the_fastest_path_by_the_measured_figures_is_chosen(bundle: Path) -> None:
    paths = tuning.candidates(json.loads((bundle / "manifest.json").read_text()), installed_backends())
    labels = [f"{b} {p}" for b, p in paths]
    assert "onnxruntime fp32" in labels and "onnxruntime int8" in labels
    # every path gets a distinct time; the chosen one must be the quickest that passes
    seconds = {label: 1.0 + i for i, label in enumerate(reversed(labels))}
    timer = timer_from(seconds)
    result = tune(bundle, timer=timer)
    assert sorted(timer.calls) == sorted(labels)
    assert all(m.passed for m in result.measurements)  # the tiny bundle's paths all agree at 0.999
    assert f"{result.backend} {result.precision}" == labels[-1]
    by_label = {m.label: m for m in result.measurements}
    assert by_label[labels[-1]].images_per_s == pytest.approx(tuning.TIMING_BATCH / 1.0)
    assert "CHOSEN" in result.table()


def test_a_fast_path_below_the_agreement_bar_is_refused(bundle: Path) -> None:
    seconds = {"onnxruntime fp32": 1.0, "onnxruntime int8": 0.01, "openvino fp32": 2.0, "openvino int8": 0.01,
               "openvino bf16": 0.01, "openvino fp16": 0.01}
    # fp32 paths agree to ~1e-7, int8 to ~2e-5 on this bundle: a bar between them refuses int8
    result = tune(bundle, timer=timer_from(seconds), min_cosine=0.999999)
    int8 = next(m for m in result.measurements if m.label == "onnxruntime int8")
    assert not int8.passed and int8.latent_min_cosine is not None and int8.latent_min_cosine < 0.999999
    assert "latent min cosine" in int8.note
    assert all(m.passed == (m.latent_min_cosine is not None and m.latent_min_cosine >= 0.999999)
               for m in result.measurements)
    chosen = result.best()
    assert chosen is not None and chosen.passed
    assert chosen.images_per_s == max(m.images_per_s or 0 for m in result.measurements if m.passed)
    # nothing passes an impossible bar: no choice, and the CLI records nothing (below)
    none = tune(bundle, timer=timer_from(seconds), min_cosine=1.0 + 1e-9)
    assert none.backend is None and none.notes


def test_auto_reuses_the_recorded_choice_and_says_so(bundle: Path, cache: Path) -> None:
    rt = Runtime(bundle)
    assert rt.describe()["chosen_by"] == "default" and "ceir tune" in rt.describe()["summary"]
    result = tune(bundle, timer=timer_from({"onnxruntime fp32": 1.0, "onnxruntime int8": 0.5, "openvino fp32": 1.0,
                                            "openvino int8": 0.9, "openvino bf16": 0.8, "openvino fp16": 0.9}))
    assert (result.backend, result.precision) == ("onnxruntime", "int8")
    record(result)
    assert cache.is_file() and lookup(json.loads((bundle / "manifest.json").read_text()), None) is not None
    rt = Runtime(bundle)
    described = rt.describe()
    assert (rt.backend, rt.precision) == ("onnxruntime", "int8")
    assert described["chosen_by"] == "tuning record" and described["figures"]["images_per_s"] == pytest.approx(32)
    assert "images/s" in described["summary"]
    # a fixed backend takes the fastest recorded precision of that backend
    if "openvino" in installed_backends():
        assert Runtime(bundle, backend="openvino").precision == "bf16"
    # a fixed precision takes the fastest recorded backend at it
    assert Runtime(bundle, precision="fp32").backend == "onnxruntime"
    # both given: the record is not consulted
    assert Runtime(bundle, backend="onnxruntime", precision="fp32").describe()["chosen_by"] == "given"


def test_the_record_is_ignored_on_another_cpu_or_library_version(bundle: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    record(tune(bundle, timer=timer_from({"onnxruntime fp32": 1.0, "onnxruntime int8": 0.5, "openvino fp32": 1.0,
                                          "openvino int8": 0.9, "openvino bf16": 0.8, "openvino fp16": 0.9})))
    assert Runtime(bundle).precision == "int8"
    real = tuning.cpu_info()
    monkeypatch.setattr(tuning, "cpu_info", lambda: {**real, "cpu_model": "Another CPU"})
    assert Runtime(bundle).describe()["chosen_by"] == "default"
    monkeypatch.setattr(tuning, "cpu_info", lambda: {**real, "cpu_features": ["avx2"]})
    assert Runtime(bundle).describe()["chosen_by"] == "default"
    monkeypatch.setattr(tuning, "cpu_info", lambda: real)
    assert Runtime(bundle).describe()["chosen_by"] == "tuning record"
    upgraded = {**installed_backends(), "onnxruntime": "99.0.0"}
    monkeypatch.setattr(tuning, "installed_backends", lambda: upgraded)
    rt = Runtime(bundle)
    assert rt.describe()["chosen_by"] == "default" and rt.precision == "fp32"
    # other thread counts are other keys too
    monkeypatch.setattr(tuning, "installed_backends", installed_backends)
    assert Runtime(bundle, threads=real["usable_cores"] + 1).describe()["chosen_by"] == "default"


def test_tune_on_first_use_measures_records_and_is_reused(bundle: Path, cache: Path) -> None:
    rt = Runtime(bundle, tune=True)
    described = rt.describe()
    assert described["chosen_by"] == "measured now" and cache.is_file()
    figures = described["figures"]
    assert figures["latent_min_cosine"] >= MIN_COSINE and figures["images_per_s"] > 0
    assert (rt.backend, rt.precision) == (figures["backend"], figures["precision"])
    again = Runtime(bundle, tune=True)
    assert again.describe()["chosen_by"] == "tuning record"
    assert (again.backend, again.precision) == (rt.backend, rt.precision)


def test_a_damaged_cache_is_ignored_with_a_warning(bundle: Path, cache: Path, caplog: pytest.LogCaptureFixture
                                                   ) -> None:
    cache.write_text("{not json")
    with caplog.at_level("WARNING", logger="ceir_onnx.runtime"):
        rt = Runtime(bundle)
    assert rt.describe()["chosen_by"] == "default" and "ignoring the tuning cache" in caplog.text


def test_ceir_tune_command(bundle: Path, cache: Path, plugin_host: Any) -> None:
    import ceir_onnx.plugin

    group = click.Group(commands={"export": click.Group("export")})
    ceir_onnx.plugin.register_commands(cli=group)
    result = CliRunner().invoke(group, ["tune", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["recorded_in"] == str(cache) and data["backend"] in ("onnxruntime", "openvino")
    assert data["key"]["machine"]["cpu_model"] and all(m["images_per_s"] for m in data["measurements"])
    result = CliRunner().invoke(group, ["tune", str(bundle), "--no-record"])
    assert result.exit_code == 0 and "chosen:" in result.output and "not recorded" in result.output
    assert "latent min cos" in result.output
    result = CliRunner().invoke(group, ["tune", str(bundle), "--min-cosine", "1.0", "--no-record"])
    assert "no path met the bar" in result.output or result.exit_code == 0  # fp32 may agree exactly


def test_tune_checks_on_the_images_stored_at_export(tiny: Any, tmp_path: Path) -> None:
    """Check images given to the exporter are kept in the bundle (preprocessed, capped) and
    `ceir tune` measures agreement on them when it is given none."""
    import numpy as np
    from ceir_onnx.export import CHECK_PIXELS_STORED, export_bundle
    from onnx_helpers import photo_like
    from safetensors.numpy import load_file

    images = [np.asarray(im) for im in photo_like(3, seed=5)]
    out = export_bundle(tiny[0], tmp_path / "b", check_images=images, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["check_pixels"]["n"] == 3 <= CHECK_PIXELS_STORED
    assert manifest["check_pixels"]["file"] in manifest["files"]  # checksummed like every file
    stored = load_file(str(out / manifest["check_pixels"]["file"]))["pixels"]
    assert stored.shape[0] == 3 and stored.shape[1:] == tuple(manifest["graphs"]["image"]["inputs"][0]["shape"][1:])
    result = tune(out, timer=lambda label, run: 1.0, paths=[("onnxruntime", "fp32")])
    assert result.check_images.startswith("3 check images stored in the bundle")
    # given images still win, and a bundle exported without any falls back to synthetic images
    assert tune(out, timer=lambda label, run: 1.0, paths=[("onnxruntime", "fp32")],
                check_images=images[:2]).check_images == "2 given images"
    plain = export_bundle(tiny[0], tmp_path / "plain", progress=False)
    assert "check_pixels" not in json.loads((plain / "manifest.json").read_text())
    assert "synthetic" in tune(plain, timer=lambda label, run: 1.0, paths=[("onnxruntime", "fp32")]).check_images
