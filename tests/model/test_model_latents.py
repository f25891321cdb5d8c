"""The latent models of the vae plugin: VAE, identity, PCA (contracts.LatentModel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.contracts import LatentModel
from ceir_sdk.errors import BadInputError


def _zscored(n: int = 300, c: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) @ rng.normal(size=(3, c)) + 0.1 * rng.normal(size=(n, c))
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def test_plugin_registers_three_latent_models(vae_host: ceir_plugins.PluginHost) -> None:
    assert set(vae_host.registrations("latent_model")) >= {"vae", "identity", "pca"}
    with pytest.raises(BadInputError, match=r"'vae' \(plugin 'vae'\) does not take the option\(s\) hidden"):
        ceir_plugins.get_latent_model("vae", hidden=3)


def test_declared_latent_options_are_the_models_own() -> None:
    import inspect

    from ceir_vae.plugin import PCA_OPTIONS, VAE_OPTIONS
    from ceir_vae.simple import PCALatentModel
    from ceir_vae.vae import VAEConfig

    assert set(VAE_OPTIONS) == set(VAEConfig.__dataclass_fields__)
    assert set(PCA_OPTIONS) == set(inspect.signature(PCALatentModel).parameters)


def test_vae_fits_zscored_inputs_and_is_deterministic() -> None:
    x = _zscored()
    opts = {"latent_dim": 4, "hidden_dim": 16, "max_epochs": 40, "patience": 40, "kl_weight": 0.5, "batch_size": 32}
    a = ceir_plugins.get_latent_model("vae", **opts).fit(x[:250], x_val=x[250:], seed=1, progress=False)
    b = ceir_plugins.get_latent_model("vae", **opts).fit(x[:250], x_val=x[250:], seed=1, progress=False)
    assert isinstance(a, LatentModel)
    za = a.encode(x)
    np.testing.assert_array_equal(za, b.encode(x))
    assert za.dtype == np.float32 and za.shape == (300, 4)
    # The Gaussian likelihood reconstructs negative and >1 values (a sigmoid decoder cannot).
    recon = a.decode(za)
    assert recon.min() < -1.0 and recon.max() > 1.0
    assert np.mean((recon - x) ** 2) < 0.5 * np.mean(x**2)
    assert a.history["selected_on"] == "validation"
    module = a.encoder_module()
    assert not module.training
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), za, atol=1e-6)


def test_vae_learns_a_larger_variance_for_concepts_it_cannot_predict() -> None:
    """learn_variance=True learns one variance per concept: pure-noise concepts end up with a
    larger one (less say in the fit) than the concepts a low-rank latent explains."""
    rng = np.random.default_rng(4)
    signal = rng.normal(size=(600, 2)) @ rng.normal(size=(2, 8)) + 0.1 * rng.normal(size=(600, 8))
    x = np.concatenate([signal, rng.normal(size=(600, 4))], axis=1)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    opts = {"latent_dim": 4, "hidden_dim": 32, "max_epochs": 60, "patience": 60, "batch_size": 64, "kl_weight": 1.0}
    vae = ceir_plugins.get_latent_model("vae", learn_variance=True, **opts).fit(
        x[:500], x_val=x[500:], seed=0, progress=False)
    _, tensors = vae.state()
    log_var = tensors["decoder.log_var"]
    assert log_var[8:].min() > log_var[:8].max() + 0.3  # Adam moves log-variances ~lr per step
    fixed = ceir_plugins.get_latent_model("vae", **opts).fit(x[:500], seed=0, progress=False)  # default: fixed
    np.testing.assert_array_equal(fixed.state()[1]["decoder.log_var"], np.zeros(12, np.float32))


def test_vae_state_round_trip() -> None:
    x = _zscored()
    vae = ceir_plugins.get_latent_model("vae", latent_dim=3, hidden_dim=8, max_epochs=3).fit(x, progress=False)
    config, tensors = vae.state()
    assert all(v.dtype == np.float32 for v in tensors.values())
    other = ceir_plugins.get_latent_model("vae")
    other.load_state(config, tensors)
    np.testing.assert_array_equal(other.encode(x), vae.encode(x))


def test_pca_and_identity() -> None:
    x = _zscored()
    pca = ceir_plugins.get_latent_model("pca", latent_dim=3).fit(x)
    z = pca.encode(x)
    assert z.shape == (300, 3)
    # 3 underlying factors: three components reconstruct almost everything.
    assert np.mean((pca.decode(z) - x) ** 2) < 0.05
    with torch.no_grad():
        np.testing.assert_allclose(pca.encoder_module()(torch.from_numpy(x)).numpy(), z, atol=1e-4)
    ident = ceir_plugins.get_latent_model("identity").fit(x)
    np.testing.assert_array_equal(ident.encode(x), x)
    assert ident.latent_dim == 12
