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


def test_text_queries_find_their_class_on_the_images_scale(host: ceir_plugins.PluginHost) -> None:
    """Class-name texts through the head and latent must land among that class's images.

    Image-fitted z-scores alone put every text far above every image (CLIP's modality gap):
    text z-scores reached 48 and text search was at chance (precision@10 0.10)."""
    from ceir_sdk.worlds import World

    world = World("world10", image_size=32)
    train = next(world.batches(1500, split="train", batch_size=1500)).images
    test = next(world.batches(600, split="test", batch_size=600))
    model = CEIRModel("open-clip:ceir-world", seed=0)
    model.fit(train, oracle_concepts(world), progress=False)
    z_img, lat_img = model.encode(test.images, output="both", progress=False)
    z_txt, lat_txt = model.encode_texts([f"a photo of a {name}." for name in world.class_names])
    assert np.abs(z_txt).max() < 2 * np.abs(z_img).max()
    dist = ((lat_txt[:, None, :] - lat_img[None, :, :]) ** 2).sum(-1)
    top10 = np.argsort(dist, axis=1)[:, :10]
    precision = np.mean([(test.labels[rows] == label).mean() for label, rows in enumerate(top10)])
    assert precision >= 0.4, precision
    assert model.encode_texts("a photo of a zebra.", output="latent").shape == (1, lat_img.shape[1])
