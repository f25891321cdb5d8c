"""Nuisances: how a picture was made, independent of what it shows (world version 2).

Real CLIP features encode far more than the objects in a picture: web alt-text names the
rendering style, the light, the camera's faults, text and frames laid over the image, the
weather. None of that is a concept of the class, and no LLM asked for "the visual features of a
ladybug" answers "a blurry photo at night". World version 1 had none of it, so the small world
CLIP saw only what the concept set names, raw k-means sat at 96% of a linear probe, and a
concept bottleneck had nothing to remove. Version 2 draws these nuisance families into every
image, independently of the class and of every concept, and names them in captions at
alt-text-like rates, so the world CLIP learns them as a web-trained CLIP learns style.

Each family has a neutral value (an ordinary daylight photo with nothing over it), drawn with
probability ``1 - NUISANCE_P[family]``; otherwise one of the other values, uniformly. The draw
uses its own random stream (``World.sample`` spawns it), so it is independent of the class and
the concepts by construction, and a sample's concept values are the same as they would be
without nuisances.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

# The world's version: 1 had no nuisances; 2 adds the families below. Recorded in the world
# CLIP's training_info.json and in the backbone spec of models fitted on it.
WORLD_VERSION: Final[int] = 2

NUISANCE_FAMILIES: Final[tuple[str, ...]] = ("style", "lighting", "camera", "overlay", "weather")

# family -> values; the first is the neutral value.
NUISANCE_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "style": ("photo", "painting", "cartoon", "vintage photo"),
    "lighting": ("daylight", "night", "dim light", "bright light", "sunset"),
    "camera": ("sharp", "blurry", "grainy", "tilted"),
    "overlay": ("none", "text", "watermark", "frame"),
    "weather": ("clear", "rain", "fog"),
}

# Probability that an image shows a non-neutral value of the family.
NUISANCE_P: Final[dict[str, float]] = {
    "style": 0.4,
    "lighting": 0.45,
    "camera": 0.35,
    "overlay": 0.4,
    "weather": 0.3,
}

# Probability that a caption names the family's value when it is not neutral (alt-text names
# style and light more often than camera faults). "a photo" is the one neutral value captions
# name (the "a photo of ..." lead); the other neutral values are never written.
CAPTION_P: Final[dict[str, float]] = {
    "style": 0.8,
    "lighting": 0.7,
    "camera": 0.6,
    "overlay": 0.6,
    "weather": 0.65,
}

# How a caption names each value: a lead for style ("a painting of a red round object"), a
# phrase after the object otherwise.
STYLE_LEADS: Final[dict[str, str]] = {
    "photo": "a photo of {}",
    "painting": "a painting of {}",
    "cartoon": "a cartoon of {}",
    "vintage photo": "a vintage photo of {}",
}
CAMERA_LEADS: Final[dict[str, str]] = {
    "blurry": "a blurry picture of {}",
    "grainy": "a grainy picture of {}",
    "tilted": "a tilted picture of {}",
}
TAIL_PHRASES: Final[dict[str, str]] = {
    "night": "at night",
    "dim light": "in dim light",
    "bright light": "in bright light",
    "sunset": "at sunset",
    "text": "with text over it",
    "watermark": "with a watermark",
    "frame": "in a frame",
    "rain": "in the rain",
    "fog": "in fog",
}


def nuisance_phrases() -> dict[str, dict[str, str]]:
    """family -> value -> the words a caption uses for it (neutral values left out, but "photo")."""
    out: dict[str, dict[str, str]] = {}
    for family, values in NUISANCE_VALUES.items():
        named = {}
        for value in values:
            if family == "style":
                named[value] = STYLE_LEADS[value].format("").strip()
            elif family == "camera" and value in CAMERA_LEADS:
                named[value] = value
            elif value in TAIL_PHRASES:
                named[value] = TAIL_PHRASES[value]
        out[family] = named
    return out


def draw_nuisances(rng: np.random.Generator) -> dict[str, str]:
    """One value per nuisance family (the neutral one with probability 1 - NUISANCE_P)."""
    out = {}
    for family in NUISANCE_FAMILIES:
        values = NUISANCE_VALUES[family]
        if rng.random() < NUISANCE_P[family]:
            out[family] = values[1 + int(rng.integers(len(values) - 1))]
        else:
            out[family] = values[0]
    return out


def neutral(family: str) -> str:
    return NUISANCE_VALUES[family][0]


# --- drawing ---------------------------------------------------------------------------------
F32 = NDArray[Any]


def _box_blur(img: F32, passes: int = 1) -> F32:
    """3x3 box blur with edge replication (one pass)."""
    out = img
    for _ in range(passes):
        p = np.pad(out, ((1, 1), (1, 1), (0, 0)), mode="edge")
        out = (p[:-2, :-2] + p[:-2, 1:-1] + p[:-2, 2:] + p[1:-1, :-2] + p[1:-1, 1:-1] + p[1:-1, 2:]
               + p[2:, :-2] + p[2:, 1:-1] + p[2:, 2:]) / 9.0
    return out


def _gaussian_blur(img: F32, sigma: float) -> F32:
    radius = max(1, round(2.5 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    p = np.pad(img, ((radius, radius), (0, 0), (0, 0)), mode="edge")
    rows = sum(k[i] * p[i : i + img.shape[0]] for i in range(len(k)))
    p = np.pad(rows, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    return sum(k[i] * p[:, i : i + img.shape[1]] for i in range(len(k)))


def _luma(img: F32) -> F32:
    return 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]


def _edges(img: F32, threshold: float) -> NDArray[np.bool_]:
    y = _luma(img)
    gx = np.zeros_like(y)
    gy = np.zeros_like(y)
    gx[:, 1:-1] = y[:, 2:] - y[:, :-2]
    gy[1:-1, :] = y[2:, :] - y[:-2, :]
    return np.hypot(gx, gy) > threshold


def _style(img: F32, value: str, rng: np.random.Generator) -> F32:
    # Styles change how everything looks but keep the object's outline, colour and pattern
    # legible at 32x32: a small CLIP trained for 20 minutes on 2 cores could not learn both
    # the concepts and detail-destroying styles (pixel art, heavy blur), which version 2's
    # first draft had (shape zero-shot fell from 0.94 to 0.63).
    if value == "painting":
        # Saturated colours with streaks of brush texture along one direction.
        grey = _luma(img)[..., None]
        out = grey + 1.4 * (img - grey)
        size = img.shape[0]
        streak = rng.standard_normal((size, size)).astype(np.float32)
        axis = int(rng.integers(2))
        streak = (streak + np.roll(streak, 1, axis) + np.roll(streak, 2, axis) + np.roll(streak, -1, axis)) / 4.0
        return out * (1.0 + 0.12 * streak[..., None])
    if value == "cartoon":
        # Flat, saturated colours (posterised) with dark outlines on the very strongest edges.
        grey = _luma(img)[..., None]
        flat = np.round(np.clip(grey + 1.3 * (img - grey), 0, 1) * 4.0) / 4.0
        flat[_edges(img, 0.75)] = 0.05
        return flat
    if value == "vintage photo":
        # Faded, warm, with darkened corners.
        grey = _luma(img)[..., None]
        faded = grey + 0.6 * (img - grey)
        faded = 0.8 * faded + np.array([0.14, 0.10, 0.04], dtype=np.float32)
        size = img.shape[0]
        r = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        vignette = 1.0 - 0.35 * np.clip((r[:, None] ** 2 + r[None, :] ** 2) - 0.6, 0.0, None)
        return faded * vignette[..., None]
    return img


def _lighting(img: F32, value: str) -> F32:
    if value == "night":
        grey = _luma(img)[..., None]
        dark = 0.25 * grey + 0.75 * img
        return dark * 0.55 + np.array([0.0, 0.02, 0.08], dtype=np.float32)
    if value == "dim light":
        return img * 0.65
    if value == "bright light":
        return 1.0 - (1.0 - np.clip(img, 0, 1)) * 0.6
    if value == "sunset":
        return img * np.array([1.12, 0.84, 0.58], dtype=np.float32) + np.array([0.09, 0.03, 0.0], dtype=np.float32)
    return img


def _rotate(img: F32, degrees: float) -> F32:
    """Rotation about the centre, bilinear, edges reflected (a tilted camera, not a cut-out)."""
    h, w, _ = img.shape
    a = np.deg2rad(degrees)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) - (h - 1) / 2, np.arange(w, dtype=np.float32) - (w - 1) / 2,
                         indexing="ij")
    sx = np.cos(a) * xs + np.sin(a) * ys + (w - 1) / 2
    sy = -np.sin(a) * xs + np.cos(a) * ys + (h - 1) / 2

    def reflect(t: F32, n: int) -> F32:
        period = 2 * (n - 1)
        t = np.mod(t, period)
        return np.where(t > n - 1, period - t, t)

    sx, sy = reflect(sx, w), reflect(sy, h)
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _camera(img: F32, value: str, rng: np.random.Generator) -> F32:
    if value == "blurry":
        return _gaussian_blur(img, 0.6)
    if value == "grainy":
        return img + rng.normal(0.0, 0.07, img.shape).astype(np.float32)
    if value == "tilted":
        return _rotate(img, float(rng.choice([-1.0, 1.0]) * rng.uniform(14.0, 24.0)))
    return img


def _glyphs(rng: np.random.Generator, width: int, height: int) -> NDArray[np.bool_]:
    """A row of pseudo-letters: random 2-3 pixel wide glyphs of vertical and horizontal strokes."""
    out = np.zeros((height, width), dtype=bool)
    x = int(rng.integers(1, 3))
    while x < width - 2:
        glyph_w = int(rng.integers(2, 4))
        cell = rng.random((height, glyph_w)) < 0.55
        cell[:, int(rng.integers(glyph_w))] = True  # a vertical stroke makes it read as a letter
        out[:, x : x + glyph_w] = cell
        x += glyph_w + 1 + int(rng.random() < 0.25) * 2  # letter gap, sometimes a word gap
    return out


def _overlay(img: F32, value: str, rng: np.random.Generator) -> F32:
    size = img.shape[0]
    if value == "text":
        # A band of text along the top or bottom edge, light on dark or dark on light.
        band = max(5, size // 6)
        top = bool(rng.random() < 0.5)
        rows = slice(0, band) if top else slice(size - band, size)
        dark_band = bool(rng.random() < 0.5)
        img[rows] = 0.08 if dark_band else 0.95
        glyphs = _glyphs(rng, size, band - 2)
        region = img[rows][1 : band - 1]
        region[glyphs] = 0.95 if dark_band else 0.08
        img[rows][1 : band - 1] = region
        return img
    if value == "watermark":
        # Translucent white letters across the middle.
        height = max(5, size // 6)
        y = int(rng.integers(size // 2 - height, size // 2 + 1))
        glyphs = np.zeros((size, size), dtype=bool)
        glyphs[y : y + height] = _glyphs(rng, size, height)
        img[glyphs] = 0.6 * img[glyphs] + 0.4 * 1.0
        return img
    if value == "frame":
        width = max(2, size // 14)
        colour = [(0.05, 0.05, 0.05), (0.97, 0.97, 0.95), (0.80, 0.64, 0.20)][int(rng.integers(3))]
        img[:width] = colour
        img[-width:] = colour
        img[:, :width] = colour
        img[:, -width:] = colour
        return img
    return img


def _weather(img: F32, value: str, rng: np.random.Generator) -> F32:
    size = img.shape[0]
    if value == "rain":
        # Thin light streaks slanting one way across the whole picture.
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        slant = float(rng.uniform(0.25, 0.5)) * float(rng.choice([-1.0, 1.0]))
        period = int(rng.integers(4, 6))
        t = np.mod(xs + slant * ys + rng.integers(period), period)
        dash = np.mod(ys + (xs * 7) % 5, 6) < 4  # broken streaks, not solid stripes
        streak = (t < 1) & dash
        img[streak] = 0.45 * img[streak] + 0.55 * 0.85
        return img
    if value == "fog":
        return 0.7 * img + 0.3 * np.float32(0.78)
    return img


# Order of application: what the scene looks like (weather, light), how it is rendered, how the
# camera took it, what was laid over the finished picture.
def apply_nuisances(image: NDArray[np.uint8], values: dict[str, str], rng: np.random.Generator) -> NDArray[np.uint8]:
    """``image`` (H, W, 3) uint8 as seen through the nuisance ``values``; neutral values change nothing."""
    if all(values.get(f, neutral(f)) == neutral(f) for f in NUISANCE_FAMILIES):
        return image
    img = image.astype(np.float32) / 255.0
    img = _weather(img, values.get("weather", "clear"), rng)
    img = _lighting(img, values.get("lighting", "daylight"))
    img = _style(img, values.get("style", "photo"), rng)
    img = _camera(img, values.get("camera", "sharp"), rng)
    img = _overlay(np.ascontiguousarray(img, dtype=np.float32), values.get("overlay", "none"), rng)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
