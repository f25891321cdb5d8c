"""A zoo of awkward image files (valid but odd, and broken), written into a given folder."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

GOOD = {
    "rgb.png": "RGB",
    "gray.png": "L",
    "bilevel.png": "1",
    "cmyk.jpg": "CMYK",
    "gray16.png": "I;16",
    "float.tif": "F",
    "palette.png": "P",
    "palette_alpha.png": "P+transparency",
    "rgba.png": "RGBA",
    "la.png": "LA",
}
# file -> a word the problem description must contain
BAD = {
    "empty.png": "empty",
    "truncated.jpg": "truncated",
    "truncated.png": "truncated",
    "not_an_image.jpg": "not an image",
    "bomb.png": "decompression",
}
NON_IMAGES = ["README.txt", "labels.csv"]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size: what a decompression bomb looks like on open."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_zoo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8), "RGB")
    rgb.save(root / "rgb.png")
    rgb.convert("L").save(root / "gray.png")
    rgb.convert("1").save(root / "bilevel.png")
    Image.new("RGB", (40, 30), (255, 0, 0)).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    ramp = np.tile(np.linspace(0, 65535, 40).astype(np.uint16), (30, 1))
    Image.fromarray(ramp).save(root / "gray16.png")  # mode I;16
    Image.fromarray(np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1)), "F").save(root / "float.tif")
    rgb.convert("P").save(root / "palette.png")
    pal = Image.new("P", (40, 30), 0)
    pal.putpalette([255, 0, 0] * 256)
    pal.info["transparency"] = 0
    pal.save(root / "palette_alpha.png", transparency=0)
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 0] = 255  # red under fully transparent pixels: must not show
    rgba[:, 20:, 3] = 255  # right half opaque red
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    rgb.convert("LA").save(root / "la.png")
    (root / "empty.png").write_bytes(b"")
    jpeg = _encoded(rgb, "JPEG")
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = _encoded(rgb, "PNG")
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "not_an_image.jpg").write_text("this is text, not a JPEG\n")
    (root / "bomb.png").write_bytes(_png_header_only(40_000, 40_000))
    for name in NON_IMAGES:
        (root / name).write_text("not an image\n")
    return root
