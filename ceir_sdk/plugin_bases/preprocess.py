"""The preprocessing a backbone declares (``preprocess_config()``): its keys, their allowed values
and defaults, and the check that refuses anything else.

The ONNX runtime reproduces exactly these keys with PIL and numpy, so a value it cannot follow
("crop": "banana", a non-square size) is refused where the backbone declares it, naming the values
it takes, instead of being carried silently into a bundle whose pixels differ from the model's.
"""

from __future__ import annotations

import math
from typing import Any

from ceir_sdk.errors import BadInputError

#: CLIP's normalisation, the defaults of ``mean`` and ``std``
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: resize mode -> what it does
RESIZE_MODES = {
    "shortest": "scale so the shorter side is image_size (aspect kept), then crop the centre square",
    "longest": "scale so the longer side is image_size (aspect kept), then pad to a centred square",
    "squash": "scale both sides to image_size (aspect not kept), no crop",
}
#: the crop each resize mode implies (the runtime crops or pads by the resize mode)
CROP_FOR_RESIZE = {"shortest": "center", "longest": "center-or-pad", "squash": "none"}
INTERPOLATIONS = ("bicubic", "bilinear")

#: key -> (default, allowed values in words); the contract table of docs/plugins.md
PREPROCESS_KEYS: dict[str, tuple[Any, str]] = {
    "image_size": (None, "required: a positive int (square side in pixels), or [n, n]"),
    "resize": ("shortest", ", ".join(RESIZE_MODES)),
    "crop": ("the resize mode's: " + ", ".join(f"{r} -> {c}" for r, c in CROP_FOR_RESIZE.items()),
             ", ".join(CROP_FOR_RESIZE.values())),
    "interpolation": ("bicubic", ", ".join(INTERPOLATIONS)),
    "mean": (list(CLIP_MEAN), "3 finite floats (RGB), subtracted after scaling pixels to [0, 1]"),
    "std": (list(CLIP_STD), "3 positive finite floats (RGB), divided by after subtracting mean"),
    "fill_color": (0, "0 (the padding of 'longest' is black)"),
}


def _three_floats(cfg: dict[str, Any], key: str, where: str, *, positive: bool) -> None:
    value = cfg[key]
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        numbers = []
    ok = len(numbers) == 3 and all(math.isfinite(v) and (v > 0 or not positive) for v in numbers)
    if not ok:
        raise BadInputError(f"{where}: {key!r} is {value!r}; it must be {PREPROCESS_KEYS[key][1]}")


def check_preprocess_config(cfg: Any, *, where: str = "preprocess_config()") -> dict[str, Any]:
    """Return ``cfg`` unchanged when the ONNX runtime can reproduce it; otherwise raise a
    :class:`BadInputError` naming the key, the value and the values allowed (docs/plugins.md)."""
    if not isinstance(cfg, dict):
        raise BadInputError(f"{where} must return a dict of {', '.join(PREPROCESS_KEYS)}; got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(PREPROCESS_KEYS))
    if unknown:
        raise BadInputError(f"{where}: unknown keys {', '.join(map(repr, unknown))}; the keys are "
                            f"{', '.join(PREPROCESS_KEYS)} (the runtime reproduces exactly these)")
    if "image_size" not in cfg:
        raise BadInputError(f"{where}: 'image_size' is missing; it must be {PREPROCESS_KEYS['image_size'][1]}")
    size = cfg["image_size"]
    sides = list(size) if isinstance(size, (list, tuple)) else [size]
    if not (sides and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides)
            and len(set(sides)) == 1 and len(sides) in (1, 2)):
        raise BadInputError(f"{where}: 'image_size' is {size!r}; it must be {PREPROCESS_KEYS['image_size'][1]}"
                            " (the runtime makes square inputs only)")
    resize = cfg.get("resize", "shortest")
    if resize not in RESIZE_MODES:
        raise BadInputError(f"{where}: 'resize' is {resize!r}; allowed: {PREPROCESS_KEYS['resize'][1]}")
    crop = cfg.get("crop", CROP_FOR_RESIZE[resize])
    if crop not in CROP_FOR_RESIZE.values():
        raise BadInputError(f"{where}: 'crop' is {crop!r}; allowed: {PREPROCESS_KEYS['crop'][1]}")
    if crop != CROP_FOR_RESIZE[resize]:
        raise BadInputError(
            f"{where}: 'crop' {crop!r} does not go with 'resize' {resize!r}: the resize mode decides the crop "
            f"(resize {resize!r} means crop {CROP_FOR_RESIZE[resize]!r}: {RESIZE_MODES[resize]})")
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation not in INTERPOLATIONS:
        raise BadInputError(f"{where}: 'interpolation' is {interpolation!r}; allowed: {', '.join(INTERPOLATIONS)}")
    for key, positive in (("mean", False), ("std", True)):
        if key in cfg:
            _three_floats(cfg, key, where, positive=positive)
    if cfg.get("fill_color", 0) != 0:
        raise BadInputError(f"{where}: 'fill_color' is {cfg['fill_color']!r}; allowed: "
                            f"{PREPROCESS_KEYS['fill_color'][1]}")
    return cfg
