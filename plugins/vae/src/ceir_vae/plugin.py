"""Entry point of the vae plugin: registers the latent models (torch is imported lazily)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl

# Declared here so that unknown options are refused without importing torch; a test keeps
# them equal to the models' own settings.
VAE_OPTIONS = ("batch_size", "hidden_dim", "kl_weight", "latent_dim", "learn_variance", "lr", "max_epochs",
               "patience", "threads", "weight_decay")
PCA_OPTIONS = ("latent_dim", "whiten")


def _no_spec(kind: str, spec: str | None) -> None:
    if spec:
        from ceir_sdk.errors import BadInputError

        raise BadInputError(f"latent model {kind!r} takes options, not a ':' suffix (got {spec!r})")


def make_vae(spec: str | None = None, **options: Any) -> Any:
    _no_spec("vae", spec)
    from ceir_vae.vae import VAELatentModel

    return VAELatentModel(**options)


def make_identity(spec: str | None = None, **options: Any) -> Any:
    _no_spec("identity", spec)
    from ceir_vae.simple import IdentityLatentModel

    if options:
        raise TypeError(f"the identity latent model takes no options (got {sorted(options)})")
    return IdentityLatentModel()


def make_pca(spec: str | None = None, **options: Any) -> Any:
    _no_spec("pca", spec)
    from ceir_vae.simple import PCALatentModel

    return PCALatentModel(**options)


@hookimpl
def register_latent_models(register: Any) -> None:
    register("vae", make_vae, description="CEIR VAE: Gaussian likelihood, posterior mean (default)",
             options=VAE_OPTIONS)
    register("identity", make_identity, description="z-scored concept activations as the latent", options=())
    register("pca", make_pca, description="principal components of the concept activations", options=PCA_OPTIONS)
