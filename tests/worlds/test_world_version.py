"""A model fitted on another version of the drawn world says so instead of giving other numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("ceir_open_clip.world_model")


def test_a_model_from_another_world_version_refuses_to_load(tmp_path: Path) -> None:
    from ceir_sdk.errors import CeirError
    from ceir_sdk.model import CEIRModel
    from ceir_sdk.worlds import World
    from ceir_sdk.worlds.nuisance import WORLD_VERSION

    world = World("world10", 32, seed=0)
    images = np.concatenate([b.images for b in world.batches(300, "train", batch_size=300)])
    model = CEIRModel("open-clip:ceir-world", seed=0, latent_options={"max_epochs": 2})
    model.fit(images, ["red", "striped", "round", "grass", "a tree", "dotted", "square", "water"], progress=False)
    saved = model.save(tmp_path / "model")
    config_file = saved / "config.json"
    config = json.loads(config_file.read_text())
    assert json.dumps(config).count(f'"world": "version {WORLD_VERSION}"') >= 1

    # The same model, as if fitted on version 1's world and checkpoint.
    text = config_file.read_text().replace(f'"world": "version {WORLD_VERSION}"', '"world": "version 1"')
    config_file.write_text(text)
    old = CEIRModel.load(saved)
    with pytest.raises(CeirError, match="world: fitted with 'version 1', now 'version 2'"):
        old.encode(images[:4], progress=False)
