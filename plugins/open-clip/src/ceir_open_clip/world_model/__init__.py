"""The bundled offline model "ceir-world": a small CLIP trained on ceir_sdk.worlds.

Files next to this module: ``ceir-world.json`` (an open_clip model config: a small
ModifiedResNet image tower and a 2-layer text transformer) and ``ceir-world.safetensors``
(float16 weights written by scripts/train_world_clip.py with its default CPU recipe; the run's
wall time, device and the machine's load average are in training_info.json). Load with::

    register_with_open_clip()
    model, _, preprocess = open_clip.create_model_and_transforms(
        WORLD_MODEL_NAME, pretrained=str(checkpoint_path()))
    model.eval()  # the image tower has BatchNorm: train mode would use batch statistics
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

WORLD_MODEL_NAME: Final[str] = "ceir-world"
_HERE: Final[Path] = Path(__file__).resolve().parent
_registered: set[Path] = set()


def model_dir() -> Path:
    return _HERE


def config_path() -> Path:
    return _HERE / f"{WORLD_MODEL_NAME}.json"


def checkpoint_path() -> Path:
    return _HERE / f"{WORLD_MODEL_NAME}.safetensors"


def training_info_path() -> Path:
    return _HERE / "training_info.json"


def world_version() -> int:
    """The drawn-world version the bundled checkpoint was trained on (1 before nuisances)."""
    import json

    try:
        return int(json.loads(training_info_path().read_text()).get("world_version", 1))
    except (OSError, ValueError):
        return 1


def register_with_open_clip() -> None:
    """Make open_clip know the "ceir-world" config (idempotent; imports open_clip lazily)."""
    import open_clip

    if _HERE in _registered and WORLD_MODEL_NAME in open_clip.list_models():
        return
    # The config file alone, not the directory: only our JSON is scanned.
    open_clip.add_model_config(config_path())
    _registered.add(_HERE)
