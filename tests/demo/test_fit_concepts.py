"""``ceir fit --concepts SOURCE`` takes a concept-source name as ``ceir demo --concepts`` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CEIR = [sys.executable, "-m", "ceir_sdk"]


def run_ceir(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEIR_")}
    env.update(extra)
    return subprocess.run([*CEIR, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow  # a real fit in a fresh process: open_clip and the sentence model load (~15 s)
def test_fit_takes_a_concept_source_name(tmp_path: Path) -> None:
    model = tmp_path / "model"
    result = run_ceir("fit", str(model), "--dataset", "world10", "-n", "40", "--concepts", "static:world10",
                      "--latent", "pca", "--latent-option", "latent_dim=4", CEIR_LOAD_PLUGINS="open-clip,static,vae")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((model / "config.json").read_text())
    assert config["label_information"]["concept_source"] == "static:world10"
    assert "red" in config["concepts"] and "ladybug" not in config["concepts"]  # filtered as the demo filters


def test_fit_concepts_that_are_neither_file_nor_source_list_the_choices(tmp_path: Path) -> None:
    result = run_ceir("fit", str(tmp_path / "m"), "--dataset", "world10", "-n", "20", "--concepts", "statik:world10",
                      CEIR_LOAD_PLUGINS="open-clip,static,test-plugin")
    assert result.returncode != 0
    message = result.stderr
    assert "'statik:world10'" in message and "oracle" in message
    assert "static" in message and "test-echo" in message  # the registered concept sources
    assert "Traceback" not in message
