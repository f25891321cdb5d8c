"""ModelConfig (config.json as data): every key's default for models saved by earlier versions
comes from one place, and a config survives to_json/from_json unchanged."""

from __future__ import annotations

import pytest

from ceir_sdk.errors import IncompatibleFileError
from ceir_sdk.model.config import FORMAT, ModelConfig

OLDEST = {  # what the first version wrote: no presence, template, options, provenance ...
    "format": FORMAT, "format_version": 1, "concepts": ["a", "b"],
    "latent_model": {"name": "vae", "config": {"latent_dim": 2}},
    "files": {"weights.safetensors": {"sha256": "0" * 64}},
}


def test_an_old_config_reads_with_the_documented_defaults() -> None:
    cfg = ModelConfig.from_json(OLDEST, "test model")
    assert cfg.concepts == ["a", "b"] and cfg.latent_model.name == "vae" and cfg.latent_model.options == {}
    assert cfg.weights_sha256 == "0" * 64
    assert cfg.seed == 0 and cfg.val_fraction == 0.1 and cfg.concept_template == "{}"
    assert cfg.presence.thresholds is None and cfg.presence.by_parts is True  # z > 0, parts rule on
    assert cfg.backbone_options == {} and cfg.label_information == {} and cfg.provenance == {}


def test_a_config_round_trips() -> None:
    cfg = ModelConfig.from_json(OLDEST, "test model")
    again = ModelConfig.from_json(cfg.to_json(), "test model")
    assert again == cfg


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "ceir-index"}, "has format 'ceir-index', not 'ceir-model'"),
    ({"format_version": 99}, "upgrade ceir-sdk"),
    ({"concepts": None}, "lacks"),
])
def test_a_foreign_newer_or_damaged_config_is_refused(change: dict[str, object], message: str) -> None:
    data = {**OLDEST, **change}
    if data["concepts"] is None:
        del data["concepts"]
    with pytest.raises(IncompatibleFileError, match=message):
        ModelConfig.from_json(data, "test model")
