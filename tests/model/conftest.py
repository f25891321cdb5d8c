"""Fixtures for the model tests: a host with only the vae plugin, and small fitted models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from model_synthetic import SMALL_VAE, make_world

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.model import CEIRModel


def _vae_host() -> ceir_plugins.PluginHost:
    import ceir_vae.plugin

    host = ceir_plugins.PluginHost()
    host.register(ceir_vae.plugin, name="vae")
    return host


@pytest.fixture(autouse=True)
def vae_host() -> Iterator[ceir_plugins.PluginHost]:
    host = _vae_host()
    ceir_plugins.reset_host(host)
    yield host
    ceir_plugins.reset_host(None)


@pytest.fixture(scope="session")
def world() -> tuple[Any, ...]:
    return make_world(400, seed=1)


@pytest.fixture(scope="session")
def fitted(world: tuple[Any, ...]) -> CEIRModel:
    ceir_plugins.reset_host(_vae_host())
    x, _, names, text, _ = world
    model = CEIRModel(backbone=None, latent_options=SMALL_VAE, seed=3)
    model.fit_features(x, names, concept_embeddings=text, progress=False)
    ceir_plugins.reset_host(None)
    return model
