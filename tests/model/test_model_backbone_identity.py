"""A loaded model rebuilds the backbone it was fitted with, or refuses: never other features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_synthetic import TinyBackbone

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.errors import BadInputError, IncompatibleFileError
from ceir_sdk.model import CEIRModel
from ceir_sdk.model.world_concepts import oracle_concepts
from ceir_sdk.worlds import World


class _TinyPlugin:
    @staticmethod
    @ceir_plugins.hookspecs.hookimpl
    def register_backbones(register: Any) -> None:
        register("tiny", lambda spec=None, **options: TinyBackbone(**options))


@pytest.fixture
def tiny_host(vae_host: ceir_plugins.PluginHost) -> ceir_plugins.PluginHost:
    vae_host.register(_TinyPlugin(), name="tiny")
    return vae_host


def _fit(model: CEIRModel) -> tuple[CEIRModel, np.ndarray]:
    world = World("world10", image_size=32)
    images = next(world.batches(160, split="train", batch_size=160)).images
    model.fit(images, oracle_concepts(world), progress=False)
    return model, images[:10]


def test_backbone_options_survive_save_and_load(tiny_host: Any, tmp_path: Path) -> None:
    model, images = _fit(CEIRModel("tiny:test", latent="pca", latent_options={"latent_dim": 4},
                                   backbone_options={"seed": 5}))
    model.save(tmp_path / "m")
    loaded = CEIRModel.load(tmp_path / "m")
    assert loaded.backbone.seed == 5
    np.testing.assert_allclose(loaded.encode(images), model.encode(images), rtol=1e-5, atol=1e-6)


def test_a_backbone_that_resolves_differently_is_refused(tiny_host: Any, tmp_path: Path) -> None:
    # Built from an object: the options that made it are not known, only its spec (seed 5).
    model, images = _fit(CEIRModel(TinyBackbone(seed=5), latent="pca", latent_options={"latent_dim": 4}))
    model.save(tmp_path / "m")
    loaded = CEIRModel.load(tmp_path / "m")
    with pytest.raises(IncompatibleFileError, match=r"seed: fitted with 5, now 123.*backbone_options"):
        loaded.encode(images)
    fixed = CEIRModel.load(tmp_path / "m", backbone_options={"seed": 5})
    np.testing.assert_allclose(fixed.encode(images), model.encode(images), rtol=1e-5, atol=1e-6)


def test_missing_plugins_are_named_with_the_way_out(tiny_host: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEIR_STRICT_PLUGINS", raising=False)
    installed = ceir_plugins.PluginHost()
    installed.load_entry_points(only=["vae"])  # through its entry point: the distribution is known
    installed.register(_TinyPlugin(), name="tiny")
    ceir_plugins.reset_host(installed)
    model, images = _fit(CEIRModel("tiny:test", latent="pca", latent_options={"latent_dim": 4}))
    model.save(tmp_path / "m")
    ceir_plugins.reset_host(ceir_plugins.PluginHost())  # neither the backbone nor the latent plugin
    with pytest.raises(BadInputError, match=r"'pca'.*plugin 'vae': install it with `pip install ceir-vae=="):
        CEIRModel.load(tmp_path / "m")
    ceir_plugins.reset_host(tiny_host)
    loaded = CEIRModel.load(tmp_path / "m")
    bare = ceir_plugins.PluginHost()
    ceir_plugins.reset_host(bare)
    with pytest.raises(BadInputError, match=r"fitted with the backbone 'tiny:test'.*--features"):
        loaded.encode(images)
    np.testing.assert_allclose(loaded.encode_features(model.backbone.encode_images(images)), model.encode(images),
                               rtol=1e-5, atol=1e-6)
