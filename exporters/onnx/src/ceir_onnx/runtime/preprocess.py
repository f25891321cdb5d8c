"""Image preprocessing with numpy and pillow, following open_clip's eval transform.

open_clip (through torchvision) resizes a PIL image with PIL itself, so doing the same
PIL calls here reproduces its pixels: resize (shortest side, bicubic, antialiased),
centre crop (rounded offsets, zero padding when too small), /255, normalise. Decoding to RGB
before that is ceir_sdk.data's own, so every image type reaches both paths as the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ceir_sdk.data.images import LoadOptions, array_to_rgb, load_image_file, to_rgb
from ceir_sdk.errors import BadInputError

_INTERP = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


#: The keys of a backbone's preprocess_config() that the runtime reproduces.
PREPROCESS_KEYS = frozenset({"image_size", "resize", "crop", "interpolation", "mean", "std", "fill_color"})


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int
    resize: str = "shortest"
    crop: str = "center"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], *, strict: bool = False) -> PreprocessConfig:
        """``strict`` (at export) also refuses keys the runtime would not act on."""
        unknown = set(cfg) - PREPROCESS_KEYS if strict else set()
        if "image_size" not in cfg or unknown:
            raise BadInputError(
                f"preprocess config {cfg!r} is not one the runtime can follow: it needs \"image_size\" and takes "
                f"{', '.join(sorted(PREPROCESS_KEYS))}" + (f" (not {', '.join(sorted(unknown))})" if unknown else "")
                + "; a backbone's preprocess_config() must return these keys (docs/plugins.md)")
        size = cfg["image_size"]
        if isinstance(size, (list, tuple)):
            if len(set(size)) != 1:
                raise BadInputError(f"non-square image_size {size} is not supported by the runtime")
            size = size[0]
        resize = cfg.get("resize", "shortest")
        interp = cfg.get("interpolation", "bicubic")
        if resize not in ("shortest", "squash", "longest"):
            raise BadInputError(f"unknown resize mode {resize!r}; expected shortest, squash or longest")
        if interp not in _INTERP:
            raise BadInputError(f"unknown interpolation {interp!r}; expected one of {sorted(_INTERP)}")
        return cls(
            image_size=int(size),
            resize=resize,
            crop=cfg.get("crop", "center"),
            interpolation=interp,
            mean=tuple(float(v) for v in cfg.get("mean", cls.mean)),  # type: ignore[arg-type]
            std=tuple(float(v) for v in cfg.get("std", cls.std)),  # type: ignore[arg-type]
        )


def _resize(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    size = cfg.image_size
    w, h = img.size
    interp = _INTERP[cfg.interpolation]
    if cfg.resize == "squash":
        new_w, new_h = size, size
    elif cfg.resize == "longest":
        scale = size / max(w, h)
        new_w, new_h = round(w * scale), round(h * scale)
    elif w <= h:  # torchvision: the short side becomes `size`, the long one is truncated
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), interp)


def _center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if w < size or h < size:  # pad with zeros like torchvision's CenterCrop
        canvas = Image.new(img.mode, (max(w, size), max(h, size)))
        canvas.paste(img, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
        img, (w, h) = canvas, canvas.size
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


def to_rgb_image(image: Any, options: LoadOptions | None = None) -> Image.Image:
    """A path, PIL image or array -> 8-bit RGB, decoded exactly as the torch model decodes it.

    The same function as ``ceir_sdk.data`` (EXIF rotation, alpha composited onto white, palette
    and 1-bit images converted before resizing, 16-bit scaled, decompression-bomb limit), so a
    bundle embeds a phone JPEG or a transparent PNG as the model it was exported from does.
    """
    if isinstance(image, Image.Image):
        return to_rgb(image, "image", options)[0]
    if isinstance(image, (str, os.PathLike)):
        return load_image_file(image, options)[0]
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, "array", options)[0]
    raise BadInputError(
        f"unsupported image type {type(image).__name__}; give a path, a PIL image or an array (H, W, 3)"
    )


def preprocess_one(image: Any, cfg: PreprocessConfig, options: LoadOptions | None = None) -> np.ndarray:
    """One image -> float32 (3, S, S), normalised; ``options``: decoding limits (max_pixels)."""
    img = _resize(to_rgb_image(image, options), cfg)
    if cfg.resize != "squash":
        img = _center_crop(img, cfg.image_size)
    arr = np.asarray(img, dtype=np.float32)
    arr *= 1.0 / 255.0
    arr -= np.asarray(cfg.mean, dtype=np.float32)
    arr /= np.asarray(cfg.std, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def iter_images(images: Any) -> Sequence[Any]:
    """Normalise the accepted inputs into a sequence of single images.

    Accepted: a folder path (its image files, recursively, sorted by relative path), a path, a PIL image, a uint8
    array (H, W, 3) or a batch (N, H, W, 3), or a list of any of these.
    """
    if isinstance(images, (str, os.PathLike)):
        path = Path(images)
        if path.is_dir():
            # recursive, so the usual one-subfolder-per-class layout works as it is
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise BadInputError(f"folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            return files
        if not path.exists():
            raise BadInputError(f"no such image file or folder: {path}")
        return [path]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, (Image.Image, np.ndarray)):
        return [images]
    if isinstance(images, Iterable):
        return list(images)
    raise BadInputError(f"unsupported images {type(images).__name__}")
