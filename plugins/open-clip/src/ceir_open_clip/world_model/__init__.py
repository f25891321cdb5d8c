"""The bundled offline model "ceir-world": a small CLIP trained on ceir_sdk.worlds.

Files next to this module: ``ceir-world.json`` (an open_clip model config: a small
ModifiedResNet image tower and a 2-layer text transformer) and ``ceir-world.safetensors``
(float16 weights written by scripts/train_world_clip.py with its default CPU recipe; the run's
wall time, device and the machine's load average are in training_info.json). A second, smaller
model "ceir-world-small" (``ceir-world-small.json``, ``.safetensors``,
``ceir-world-small.training_info.json``; trained on the same world within the same budget) plays
the separate concept model of the method's reference pairing. Load with::

    register_with_open_clip()
    model, _, preprocess = open_clip.create_model_and_transforms(
        WORLD_MODEL_NAME, pretrained=str(checkpoint_path()))
    model.eval()  # the image tower has BatchNorm: train mode would use batch statistics
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

WORLD_MODEL_NAME: Final[str] = "ceir-world"
SMALL_MODEL_NAME: Final[str] = "ceir-world-small"
MODEL_NAMES: Final[tuple[str, ...]] = (WORLD_MODEL_NAME, SMALL_MODEL_NAME)
_HERE: Final[Path] = Path(__file__).resolve().parent
_registered: set[Path] = set()


def model_dir() -> Path:
    return _HERE


def config_path(name: str = WORLD_MODEL_NAME) -> Path:
    return _HERE / f"{name}.json"


def checkpoint_path(name: str = WORLD_MODEL_NAME) -> Path:
    return _HERE / f"{name}.safetensors"


def training_info_path(name: str = WORLD_MODEL_NAME) -> Path:
    # The first model kept its historical file name (scripts/train_world_clip.py writes the same).
    return _HERE / ("training_info.json" if name == WORLD_MODEL_NAME else f"{name}.training_info.json")


def world_version(name: str = WORLD_MODEL_NAME) -> int:
    """The drawn-world version the bundled checkpoint was trained on (1 before nuisances)."""
    import json

    try:
        return int(json.loads(training_info_path(name).read_text()).get("world_version", 1))
    except (OSError, ValueError):
        return 1


def register_with_open_clip() -> None:
    """Make open_clip know the bundled models' configs (idempotent; imports open_clip lazily)."""
    import open_clip

    if _HERE in _registered and all(name in open_clip.list_models() for name in MODEL_NAMES):
        return
    # The config files alone, not the directory: only our JSON is scanned.
    for name in MODEL_NAMES:
        open_clip.add_model_config(config_path(name))
    _registered.add(_HERE)
