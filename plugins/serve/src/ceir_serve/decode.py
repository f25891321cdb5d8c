"""Images arriving as text (data URIs or base64) -> preprocessed pixels, with the runtime's limits.

Decoding is the same as the runtime's file path (``load_image_file``: PIL open, size check before
the pixels are decoded, ``to_rgb``), so an image sent over HTTP embeds exactly as the same file
given to ``Runtime.embed``. It runs in a thread pool, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ceir_sdk.data.images import ImageLoadError, LoadOptions, to_rgb
from ceir_serve.errors import ApiError

#: Formats a server decodes. PIL can open more (EPS runs Ghostscript, for one), which a public
#: endpoint must not hand to anyone who can send bytes.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)


def image_bytes(value: Any, where: str) -> bytes:
    """The bytes of one image given as a data URI (``data:image/png;base64,...``) or plain base64."""
    if not isinstance(value, str):
        raise ApiError(422, f"{where}: an image must be a string (a data URI or base64); got {type(value).__name__}",
                       "bad_image")
    text = value.strip()
    if text.lower().startswith(("http://", "https://", "file:", "ftp://")):
        raise ApiError(422, f"{where}: this server does not fetch URLs or files; send the image itself as a data URI "
                            "(data:image/png;base64,...) or base64", "url_not_supported")
    if text.lower().startswith("data:"):
        m = _DATA_URI.match(text)
        if m is None or not m.group("b64"):
            raise ApiError(422, f"{where}: a data URI must be base64-encoded (data:image/png;base64,...)", "bad_image")
        text = text[m.end():]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, f"{where}: not valid base64 (send the image's bytes base64-encoded, or a data URI)",
                       "bad_base64") from None
    if not data:
        raise ApiError(422, f"{where}: the image is empty (0 bytes)", "bad_image")
    return data


def decode_image(data: bytes, where: str, options: LoadOptions) -> Image.Image:
    """Bytes -> 8-bit RGB PIL image; the pixel limit is checked from the header, before decoding."""
    # PIL refuses at twice its own limit before ours could run; a limit raised on purpose wins.
    if Image.MAX_IMAGE_PIXELS is not None and options.max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = options.max_pixels
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            width, height = img.size
            if width * height > options.max_pixels:
                raise ApiError(413, f"{where}: the image is {width}x{height} = {width * height:,} pixels, over this "
                                    f"server's limit of {options.max_pixels:,} (a decompression-bomb guard); send a "
                                    "smaller image", "too_many_pixels")
            img.load()
            return to_rgb(img, where, options)[0]
    except ApiError:
        raise
    except ImageLoadError as exc:  # to_rgb's checks (no pixels, odd modes)
        status = 413 if "limit" in exc.problem else 422
        raise ApiError(status, f"{where}: {exc.problem}", "bad_image") from None
    except Image.DecompressionBombError:
        raise ApiError(413, f"{where}: the image exceeds the decompression-bomb limit of {options.max_pixels:,} "
                            "pixels; send a smaller image", "too_many_pixels") from None
    except UnidentifiedImageError:
        raise ApiError(422, f"{where}: not an image, or not one of the accepted formats ({', '.join(FORMATS)})",
                       "bad_image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc) or type(exc).__name__
        problem = "the image is truncated" if "truncat" in text.lower() else "the image data is corrupt"
        raise ApiError(422, f"{where}: {problem} ({text[:200]}); send the complete file", "bad_image") from None


def pixels_of(value: Any, where: str, runtime: Any) -> np.ndarray:
    """One image value of a request -> float32 (3, S, S) pixels for the runtime's image graph
    (the runtime's own preprocessing and ``max_pixels``)."""
    options: LoadOptions = runtime.load_options
    img = decode_image(image_bytes(value, where), where, options)
    try:
        return np.asarray(runtime.preprocess([img])[0], dtype=np.float32)
    except ImageLoadError as exc:
        raise ApiError(422, f"{where}: {exc.problem}", "bad_image") from None
