"""Entry point of the open-clip plugin: registers the "open-clip" backbone (torch imported lazily)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl

# OpenClipBackbone's keyword options, listed here so that a mistyped one is refused with this
# list without importing torch; a test keeps the two equal.
BACKBONE_OPTIONS = ("device", "precision", "seed", "batch_size", "num_workers", "cache", "on_error", "max_pixels",
                    "background")


def make_backbone(spec: str | None, **options: Any) -> Any:
    """``open-clip:SPEC`` -> :class:`ceir_open_clip.backbone.OpenClipBackbone`."""
    from ceir_open_clip.backbone import OpenClipBackbone

    return OpenClipBackbone(spec, **options)


@hookimpl
def register_backbones(register: Any) -> None:
    register(
        "open-clip",
        make_backbone,
        description="any open_clip model: MODEL/TAG, MODEL@checkpoint, hf-hub:org/repo, MODEL (random), ceir-world",
        options=BACKBONE_OPTIONS,
    )
