"""Model directories: safetensors + JSON, versioned, checksummed, tampering refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from ceir_sdk.errors import IncompatibleFileError
from ceir_sdk.model import CEIRModel


def test_round_trip_gives_identical_outputs(fitted: CEIRModel, world: tuple[Any, ...], tmp_path: Path) -> None:
    x = world[0][:25]
    fitted.save(tmp_path / "m")
    loaded = CEIRModel.load(tmp_path / "m")
    assert loaded.concepts == fitted.concepts
    for out in ("latent", "concepts"):
        np.testing.assert_array_equal(loaded.encode_features(x, output=out), fitted.encode_features(x, output=out))
    np.testing.assert_array_equal(loaded.concept_text_embeddings(), fitted.concept_text_embeddings())
    a = fitted.explain(features=x[:3])[0].contributions
    np.testing.assert_allclose(loaded.explain(features=x[:3])[0].contributions, a, rtol=1e-5, atol=1e-7)


def test_directory_layout_matches_the_shared_contract(fitted: CEIRModel, tmp_path: Path) -> None:
    d = fitted.save(tmp_path / "m")
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "weights.safetensors"]
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["format"] == "ceir-model" and cfg["format_version"] == 1
    for key in ("ceir_sdk_version", "backbone", "concepts", "latent_model", "label_information", "provenance"):
        assert key in cfg
    assert cfg["latent_model"]["name"] == "vae" and "config" in cfg["latent_model"]
    assert len(cfg["files"]["weights.safetensors"]["sha256"]) == 64
    tensors = load_file(d / "weights.safetensors")
    assert tensors["bottleneck.weight"].shape == (len(cfg["concepts"]), 32)
    assert tensors["concept_text_embeddings"].shape == (len(cfg["concepts"]), 32)
    assert any(k.startswith("latent.") for k in tensors)
    assert all(v.dtype == np.float32 for v in tensors.values())
    assert cfg["provenance"]["n_train"] + cfg["provenance"]["n_validation"] == 400


def test_tampered_weights_are_refused(fitted: CEIRModel, tmp_path: Path) -> None:
    d = fitted.save(tmp_path / "m")
    data = bytearray((d / "weights.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (d / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(IncompatibleFileError, match="checksum"):
        CEIRModel.load(d)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(format_version=2), "format_version 2 is not supported"),
        (lambda c: c.update(format="something-else"), "format"),
        (lambda c: c.update(concepts=c["concepts"][:-1]), "do not match"),
        (lambda c: c.pop("files"), "lacks"),
    ],
)
def test_incompatible_configs_are_refused(fitted: CEIRModel, tmp_path: Path, edit: Any, message: str) -> None:
    d = fitted.save(tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    edit(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(IncompatibleFileError, match=message):
        CEIRModel.load(d)


def test_missing_or_garbage_files_are_refused(fitted: CEIRModel, tmp_path: Path) -> None:
    with pytest.raises(IncompatibleFileError, match="not a directory"):
        CEIRModel.load(tmp_path / "nothing")
    d = fitted.save(tmp_path / "m")
    (d / "config.json").write_text("{not json")
    with pytest.raises(IncompatibleFileError, match="not valid JSON"):
        CEIRModel.load(d)


def test_interrupted_save_leaves_previous_files_intact(
    fitted: CEIRModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = fitted.save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    import ceir_sdk.atomic as fileio

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(d)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # no temp files left either
    CEIRModel.load(d)
