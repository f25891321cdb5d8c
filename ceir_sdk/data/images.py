"""Robust image decoding: every image becomes an 8-bit RGB PIL image or a clear ImageLoadError.

Handled on purpose: zero-byte, unreadable, truncated and non-image files; decompression bombs
(a pixel limit that is an option); grayscale, 1-bit, CMYK, 16-bit and float images; palette
and alpha images (composited onto a background colour, since dropping alpha would expose
whatever colour happens to sit under transparent pixels); EXIF rotation; multi-frame files
(first frame). Arrays are accepted as uint8 (or uint16 / float in [0, 1], converted).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ceir_sdk.errors import BadInputError

# The way out of a pixel limit, for Python callers (the argument) and the command line (the option).
_RAISE_LIMIT = "if the image is genuine, pass a higher max_pixels=N (the --max-pixels N option of ceir commands)"

# PIL warns (its file, line and `warnings.warn(` source line on stderr) for images between its
# limit and twice it, before our own size check says the same once, in our words, with the way
# out (or lets the image through when the caller raised max_pixels, which also raises PIL's
# limit). So that warning only ever repeats ours: silenced by category, once, here. A
# catch_warnings() around each open would not do: images are decoded in several threads, and
# it swaps the process-wide filter list.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

#: Default pixel limit (width * height); PIL's own bomb threshold, so PIL never warns first.
DEFAULT_MAX_PIXELS: int = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
DEFAULT_BACKGROUND: tuple[int, int, int] = (255, 255, 255)


class ImageLoadError(BadInputError):
    """One image could not be used; ``problem`` says why and ``hint`` what to do."""

    def __init__(self, source: str, problem: str, hint: str = "") -> None:
        self.source = source
        self.problem = problem
        self.hint = hint[:1].upper() + hint[1:]  # a sentence of its own after the problem's full stop
        message = f"{source}: {problem}"
        super().__init__(f"{message}. {self.hint}" if hint else message)


class NoUsableImagesError(BadInputError):
    """Every image given was unreadable and skipped (``on_error="skip"``): nothing to encode.
    A type of its own so that a caller adding "whatever is new and readable" can report
    "added 0, skipped N" instead of failing."""


@dataclass(frozen=True)
class LoadOptions:
    """How images are decoded; part of the feature-cache key where it changes pixels."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    background: tuple[int, int, int] = DEFAULT_BACKGROUND

    def __post_init__(self) -> None:
        if self.max_pixels <= 0:
            raise BadInputError(f"max_pixels must be positive, got {self.max_pixels}")
        if len(self.background) != 3 or not all(0 <= int(c) <= 255 for c in self.background):
            raise BadInputError(f"background must be three values 0-255, got {self.background!r}")


def _check_size(source: str, size: tuple[int, int], options: LoadOptions) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageLoadError(source, f"image has no pixels ({width}x{height})", "remove the file")
    if width * height > options.max_pixels:
        raise ImageLoadError(
            source,
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{options.max_pixels:,} (possible decompression bomb)",
            _RAISE_LIMIT,
        )


def _let_pil_open(options: LoadOptions) -> None:
    """A caller who raised the limit on purpose: PIL's own check (at twice its limit) would still
    refuse such a file before ours runs. Ours stays in force."""
    if Image.MAX_IMAGE_PIXELS is not None and options.max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = options.max_pixels


def _pil_bomb_error(source: str, exc: Exception) -> ImageLoadError:
    """PIL refused to open the file (over twice its own limit): said in our words, not PIL's
    ("... could be decompression bomb DOS attack.")."""
    m = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
    size = f" ({int(m.group(1)):,} pixels, over PIL's limit of {int(m.group(2)):,})" if m else ""
    return ImageLoadError(source, f"image is too large to open safely{size} (possible decompression bomb)",
                          _RAISE_LIMIT)


def check_pixel_limit(path: str | os.PathLike[str], options: LoadOptions) -> None:
    """The size limit alone, from the file's header (no decoding): for images whose features
    come from the cache, so that a limit applies whether or not the image was seen before."""
    _let_pil_open(options)
    try:
        with Image.open(path) as img:
            size = img.size
    except Image.DecompressionBombError as exc:
        raise _pil_bomb_error(str(path), exc) from None
    except (OSError, SyntaxError, ValueError):
        return  # decodable when its features were cached; the full decode path reports anything else
    _check_size(str(path), size, options)


def load_image_file(path: str | os.PathLike[str], options: LoadOptions | None = None) -> tuple[Image.Image, str]:
    """Decode a file into RGB; returns the image and a note on any conversion ("" if none)."""
    options = options or LoadOptions()
    source = str(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ImageLoadError(source, "file not found", "check the path") from None
    except OSError as exc:
        raise ImageLoadError(source, f"cannot read file ({exc.strerror or exc})", "check permissions") from None
    if Path(path).is_dir():
        raise ImageLoadError(source, "is a directory, not an image file", "pass the folder itself instead")
    if size == 0:
        raise ImageLoadError(source, "file is empty (0 bytes)", "re-download or remove the file")
    _let_pil_open(options)
    try:
        with Image.open(path) as img:
            _check_size(source, img.size, options)
            img.load()
            return to_rgb(img, source, options)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise _pil_bomb_error(source, exc) from None
    except UnidentifiedImageError:
        raise ImageLoadError(
            source, "not an image or an unsupported image format", "remove the file or convert it to PNG/JPEG"
        ) from None
    except PermissionError as exc:
        raise ImageLoadError(source, f"cannot read file ({exc.strerror})", "check permissions") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated or corrupt pixel data as OSError/SyntaxError with varied text.
        text = str(exc) or type(exc).__name__
        problem = "file is truncated" if "truncat" in text.lower() else "image data is corrupt"
        raise ImageLoadError(
            source, f"{problem} ({text})", "re-download or re-export the image, or remove it"
        ) from None


def _scale_to_uint8(arr: np.ndarray, what: str, source: str) -> np.ndarray:
    """Map integer or float pixel data of any depth onto 0-255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    data = arr.astype(np.float64)
    if not np.isfinite(data).all():
        raise ImageLoadError(source, f"{what} holds NaN or infinite values", "clean the data first")
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(data.min(initial=0.0)), float(data.max(initial=0.0))
        if lo < 0.0 or hi > 1.0:
            raise ImageLoadError(
                source,
                f"{what} is floating point with values in [{lo:g}, {hi:g}]",
                "pass uint8 values 0-255 or floats in [0, 1]",
            )
        return np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8)
    if data.min(initial=0) < 0:
        raise ImageLoadError(source, f"{what} holds negative values", "pass uint8 values 0-255")
    hi = float(data.max(initial=0))
    # 16-bit data (the usual case) maps 65535 -> 255; wider data uses its own range.
    top = 255.0 if hi <= 255 else 65535.0 if hi <= 65535 else hi
    return np.clip(np.rint(data * (255.0 / top)), 0, 255).astype(np.uint8)


def _composite(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def to_rgb(img: Image.Image, source: str = "image", options: LoadOptions | None = None) -> tuple[Image.Image, str]:
    """Any PIL image -> 8-bit RGB, plus a short note naming the conversion ("" when none)."""
    options = options or LoadOptions()
    _check_size(source, img.size, options)
    notes: list[str] = []
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
        notes.append("multi-frame (first frame used)")
    try:
        rotated = ImageOps.exif_transpose(img)
    except Exception:
        rotated = None
    if rotated is not None and rotated is not img:
        img = rotated
    mode = img.mode
    if mode == "RGB":
        out = img
    elif mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        out = _composite(img, options.background)
        notes.append(f"{mode} alpha composited onto background")
    elif mode == "P":
        if "transparency" in img.info:
            out = _composite(img, options.background)
            notes.append("palette with transparency composited onto background")
        else:
            out = img.convert("RGB")
            notes.append("palette -> RGB")
    elif mode in ("L", "1"):
        out = img.convert("RGB")
        notes.append("grayscale -> RGB")
    elif mode == "CMYK":
        out = img.convert("RGB")
        notes.append("CMYK -> RGB")
    elif mode.startswith("I") or mode == "F":
        arr = _scale_to_uint8(np.asarray(img), f"{mode} image", source)
        out = Image.fromarray(arr, mode="L").convert("RGB")
        notes.append(f"{'16-bit' if mode.startswith('I;16') else mode} grayscale -> 8-bit RGB")
    else:
        try:
            out = img.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageLoadError(
                source, f"unsupported colour mode {mode!r} ({exc})", "convert the image to RGB first"
            ) from None
        notes.append(f"{mode} -> RGB")
    if out is img:
        out = img.copy()  # detach from the file handle the caller may close
    return out, "; ".join(notes)


def array_to_rgb(arr: Any, source: str = "array", options: LoadOptions | None = None) -> tuple[Image.Image, str]:
    """One image as an array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> RGB PIL image."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ImageLoadError(
            source,
            f"array of shape {tuple(a.shape)} is not an image",
            "pass (H, W, 3) uint8 per image, or (N, H, W, 3) for a batch (channels last)",
        )
    if a.dtype.kind not in "uifb":
        raise ImageLoadError(source, f"array dtype {a.dtype} is not numeric", "pass uint8 pixels")
    note = "" if a.dtype == np.uint8 else f"{a.dtype} -> uint8"
    a = np.ascontiguousarray(_scale_to_uint8(a, f"{a.dtype} array", source))
    _check_size(source, (a.shape[1], a.shape[0]), options or LoadOptions())
    if a.ndim == 2:
        return Image.fromarray(a, mode="L").convert("RGB"), "; ".join(filter(None, [note, "grayscale -> RGB"]))
    if a.shape[-1] == 4:
        img, _ = to_rgb(Image.fromarray(a, mode="RGBA"), source, options)
        return img, "; ".join(filter(None, [note, "RGBA alpha composited onto background"]))
    return Image.fromarray(a, mode="RGB"), note
