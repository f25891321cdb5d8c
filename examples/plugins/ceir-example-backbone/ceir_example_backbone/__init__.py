"""Entry point of ceir-example-backbone: registers the "example-colour" backbone.

Only light imports here: ceir imports this module on every command, so torch waits in model.py
until a user asks for the backbone.
"""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl


def make_backbone(spec: str | None = None, **options: Any) -> Any:
    from ceir_example_backbone.model import ColourBackbone

    return ColourBackbone(spec, **options)


@hookimpl
def register_backbones(register: Any) -> None:
    from ceir_sdk.plugin_bases.backbone import BASE_OPTIONS

    register("example-colour", make_backbone, description="how much of each named colour an image shows",
             options=("sharpness", *BASE_OPTIONS))
