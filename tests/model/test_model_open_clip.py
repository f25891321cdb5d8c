"""The model on the real open_clip backbone ("open-clip:ceir-world"), when its checkpoint exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.model import CEIRModel
from ceir_sdk.model.world_concepts import oracle_concepts

ceir_open_clip = pytest.importorskip("ceir_open_clip")


@pytest.fixture
def host(vae_host: ceir_plugins.PluginHost) -> ceir_plugins.PluginHost:
    from ceir_open_clip import plugin
    from ceir_open_clip.world_model import checkpoint_path

    if not checkpoint_path().is_file():
        pytest.skip("the ceir-world checkpoint is not present")
    vae_host.register(plugin, name="open-clip")
    return vae_host


def test_fit_save_load_encode_with_ceir_world(host: ceir_plugins.PluginHost, tmp_path: Path) -> None:
    from ceir_sdk.worlds import World

    world = World("world10", image_size=32)
    images = next(world.batches(160, split="train", batch_size=160)).images
    model = CEIRModel("open-clip:ceir-world", latent="pca", latent_options={"latent_dim": 8})
    model.fit(images, oracle_concepts(world), progress=False)
    assert model.backbone.name == "open-clip:ceir-world"
    latent = model.encode(images[:10], progress=False)
    features = model.backbone.encode_images(images[:10], progress=False)
    np.testing.assert_allclose(latent, model.encode_features(features), atol=1e-5)

    model.save(tmp_path / "m")
    loaded = CEIRModel.load(tmp_path / "m")  # backbone rebuilt from its saved name on first use
    np.testing.assert_allclose(loaded.encode(images[:10], progress=False), latent, atol=1e-5)
    top = loaded.extract_concepts(images[:3], top_k=3, progress=False)
    assert all(len(row) == 3 for row in top)
