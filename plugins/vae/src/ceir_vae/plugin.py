"""Entry point of the vae plugin: registers its factories with ceir (light imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


def _not_built(spec: str | None, **options: Any) -> Any:
    raise NotImplementedError("the vae latent_model is not implemented yet")


@hookimpl
def register_latent_models(register: Any) -> None:
    register("vae", _not_built, description="(shell: not implemented yet)")
