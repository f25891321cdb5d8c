"""A tiny open_clip architecture registered with open_clip, so real loading code runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny_models import CONFIGS, TINY


@pytest.fixture(scope="session")
def tiny_model_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip_configs")
    for name, cfg in CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return TINY


@pytest.fixture
def backbone_host(plugin_host: Any, tiny_model_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A host with only the open-clip plugin; the feature cache lives in this test's tmp dir."""
    import ceir_open_clip.plugin

    monkeypatch.setenv("CEIR_FEATURE_CACHE", str(tmp_path / "feature-cache"))
    plugin_host.register(ceir_open_clip.plugin, name="open-clip")
    return plugin_host
