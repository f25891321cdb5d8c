"""Drawing one image from its concept values, with nuisances drawn from the sample's RNG.

Coordinates are normalised to [-1, 1] across the image (x to the right, y downwards), so the
same code draws 32x32 and 64x64 images. Work per image is a few dozen whole-array numpy
operations on an SxS grid, which keeps 10,000 32x32 images at a few seconds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ceir_sdk.worlds.vocabulary import COLOURS, DARK_COLOURS, SIZES

F32 = NDArray[Any]  # float32 arrays; numpy's stubs lose the precision in arithmetic
Mask = NDArray[np.bool_]

IMAGE_SIZES: Final[tuple[int, ...]] = (32, 64)

SCENE_BASE: Final[dict[str, tuple[float, float, float]]] = {
    "grass": (0.32, 0.62, 0.20),
    "sand": (0.88, 0.78, 0.55),
    "water": (0.14, 0.40, 0.74),
    "the sky": (0.50, 0.74, 0.96),
    "snow": (0.93, 0.95, 0.98),
    "a road": (0.30, 0.30, 0.32),
    "a wooden floor": (0.62, 0.42, 0.23),
    "a brick wall": (0.66, 0.26, 0.18),
}


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[F32, F32]:
    centres = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2.0 - 1.0
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return xs, ys


def _background(scene: str, xs: F32, ys: F32, rng: np.random.Generator) -> F32:
    size = xs.shape[0]
    base = np.asarray(SCENE_BASE[scene], dtype=np.float32)
    fine = rng.standard_normal((size, size)).astype(np.float32)
    if scene == "grass":
        # Vertical blades: per-column brightness plus fine noise.
        cols = rng.standard_normal((size,)).astype(np.float32)
        tex = 1.0 + 0.16 * cols[None, :] + 0.08 * fine
    elif scene == "sand":
        tex = 1.0 + 0.07 * fine
    elif scene == "water":
        phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(9.0, 13.0)
        tex = 1.0 + 0.22 * np.sin(ys * freq + phase + 0.8 * np.sin(xs * 3.0)) + 0.04 * fine
    elif scene == "the sky":
        # Lighter towards the horizon.
        tex = 0.92 + 0.12 * (ys + 1.0) + 0.02 * fine
    elif scene == "snow":
        tex = 1.0 + 0.03 * fine
    elif scene == "a road":
        tex = 1.0 + 0.10 * fine
    elif scene == "a wooden floor":
        offset = rng.uniform(0, 0.4)
        plank = np.mod(ys + offset, 0.4) < 0.05
        grain = 0.08 * np.sin(xs * rng.uniform(12, 20) + 3.0 * ys)
        tex = np.where(plank, 0.55, 1.0 + grain) + 0.04 * fine
    else:  # a brick wall
        row = np.floor((ys + rng.uniform(0, 0.25)) / 0.25)
        shift = np.where(np.mod(row, 2) == 0, 0.0, 0.22)
        mortar = (np.mod(ys + rng.uniform(0, 0.25), 0.25) < 0.05) | (np.mod(xs + shift, 0.44) < 0.05)
        img = base[None, None, :] * (1.0 + 0.06 * fine)[..., None]
        img[mortar] = (0.78, 0.76, 0.72)
        return img.astype(np.float32)
    img = base[None, None, :] * tex[..., None]
    if scene == "a road":
        # A dashed centre line at a random height.
        line_y = rng.uniform(-0.7, 0.7)
        dash = (np.abs(ys - line_y) < 0.06) & (np.mod(xs + rng.uniform(0, 0.5), 0.5) < 0.3)
        img[dash] = (0.95, 0.85, 0.2)
    return img.astype(np.float32)


def shape_mask(shape: str, u: F32, v: F32, r: float) -> Mask:
    """Pixels inside ``shape`` of bounding radius ``r`` in object coordinates (u right, v down)."""
    au, av = np.abs(u), np.abs(v)
    if shape == "round":
        return u * u + v * v <= r * r
    if shape == "square":
        return np.maximum(au, av) <= 0.8 * r
    if shape == "diamond-shaped":
        return au + av <= r
    if shape == "triangular":
        return (v <= 0.6 * r) & (au <= 0.95 * r * (v + r) / (1.6 * r))
    if shape == "star-shaped":
        theta = np.arctan2(v, u) + np.pi / 2  # a point at the top
        lobes = ((1.0 + np.cos(5.0 * theta)) / 2.0) ** 1.6
        return np.sqrt(u * u + v * v) <= r * (0.40 + 0.60 * lobes)
    if shape == "cross-shaped":
        arm = 0.34 * r
        return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))
    if shape == "oval":
        return (u / r) ** 2 + (v / (0.55 * r)) ** 2 <= 1.0
    raise ValueError(f"unknown shape {shape!r}")


def pattern_mask(pattern: str, u: F32, v: F32, r: float, rng: np.random.Generator) -> Mask:
    """Pixels of the object drawn in the pattern colour (empty for plain)."""
    # Period in normalised units: at least 4 pixels at 32x32, a bit larger on big objects.
    period = max(0.25, 0.42 * r)
    if pattern == "plain":
        return np.zeros(u.shape, dtype=bool)
    if pattern == "striped":
        angle = rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
        t = u * np.cos(angle) + v * np.sin(angle) + rng.uniform(0, period)
        return np.mod(t, period) < 0.45 * period
    du, dv = u + rng.uniform(0, period), v + rng.uniform(0, period)
    if pattern == "dotted":
        cu = np.mod(du, period) - period / 2
        cv = np.mod(dv, period) - period / 2
        return cu * cu + cv * cv <= (0.27 * period) ** 2
    if pattern == "checkered":
        return (np.floor(du / period) + np.floor(dv / period)).astype(np.int64) % 2 == 0
    raise ValueError(f"unknown pattern {pattern!r}")


def _erode(mask: Mask) -> Mask:
    out = mask.copy()
    out[1:, :] &= mask[:-1, :]
    out[:-1, :] &= mask[1:, :]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def _paint(img: F32, mask: Mask, colour: tuple[float, float, float]) -> None:
    img[mask] = colour


def _draw_icon(img: F32, thing: str, cx: float, cy: float, ir: float, xs: F32, ys: F32) -> None:
    """Draw a small 'thing around' centred at (cx, cy) with radius ``ir``."""
    du, dv = (xs - cx) / ir, (ys - cy) / ir  # in icon radii
    rho2 = du * du + dv * dv
    if thing == "a tree":
        _paint(img, (np.abs(du) < 0.2) & (dv > 0.2) & (dv < 1.0), (0.40, 0.24, 0.08))
        _paint(img, du * du + (dv + 0.25) ** 2 < 0.5, (0.06, 0.42, 0.10))
    elif thing == "a flower":
        _paint(img, (rho2 < 0.85) & (rho2 > 0.12), (0.95, 0.30, 0.62))
        _paint(img, rho2 <= 0.12, (1.0, 0.92, 0.15))
    elif thing == "the sun":
        theta = np.arctan2(dv, du)
        rays = (rho2 < 1.0) & (np.abs(np.cos(4.0 * theta)) > 0.85)
        _paint(img, rays | (rho2 < 0.42), (1.0, 0.88, 0.15))
    elif thing == "a cloud":
        blob = ((du + 0.4) ** 2 + (dv - 0.1) ** 2 < 0.2) | ((du - 0.4) ** 2 + (dv - 0.1) ** 2 < 0.2)
        blob |= du * du + (dv + 0.15) ** 2 < 0.3
        _paint(img, blob, (0.99, 0.99, 1.0))
    elif thing == "a rock":
        body = du * du + ((dv - 0.2) / 0.6) ** 2 < 0.8
        _paint(img, body, (0.30, 0.30, 0.29))
        _paint(img, _erode(body), (0.55, 0.55, 0.52))
    elif thing == "a fence":
        posts = (np.mod(du + 1.0, 0.55) < 0.2) & (np.abs(du) < 1.0) & (np.abs(dv) < 0.9)
        rails = ((np.abs(dv + 0.3) < 0.12) | (np.abs(dv - 0.4) < 0.12)) & (np.abs(du) < 1.0)
        _paint(img, posts | rails, (0.55, 0.36, 0.14))
    elif thing == "a house":
        _paint(img, (np.abs(du) < 0.7) & (dv >= 0.0) & (dv < 1.0), (0.92, 0.84, 0.62))
        _paint(img, (dv < 0.0) & (dv > -1.0) & (np.abs(du) < 0.9 * (dv + 1.0)), (0.62, 0.08, 0.08))
        _paint(img, (np.abs(du) < 0.18) & (dv > 0.45) & (dv < 1.0), (0.25, 0.15, 0.08))
    else:
        raise ValueError(f"unknown thing around {thing!r}")


SUPERSAMPLE: Final[int] = 2


def _draw_object(
    shape: str,
    pattern: str,
    r: float,
    cx: float,
    cy: float,
    angle: float,
    base: F32,
    light_dir: F32,
    ink: tuple[float, float, float],
    image_size: int,
    rng: np.random.Generator,
) -> tuple[F32, F32]:
    """The main object's colours and its pixel coverage (0..1), drawn on a finer grid.

    Drawing at SUPERSAMPLE x the resolution and averaging blocks down gives anti-aliased edges:
    at 32x32 a small star is about ten pixels across, and hard-edged pixels would leave its
    outline (the shape concept) barely legible.
    """
    fine = image_size * SUPERSAMPLE
    xs, ys = _grid(fine)
    ca, sa = np.cos(angle), np.sin(angle)
    u = ((xs - cx) * ca + (ys - cy) * sa).astype(np.float32)
    v = (-(xs - cx) * sa + (ys - cy) * ca).astype(np.float32)
    mask = shape_mask(shape, u, v, r)
    shading = 1.0 + 0.15 * (u * light_dir[0] + v * light_dir[1]) / r
    obj = base[None, None, :].astype(np.float32) * shading[..., None]
    obj[pattern_mask(pattern, u, v, r, rng)] = ink
    # A dark outline (two fine pixels, one image pixel) keeps e.g. green-on-grass visible.
    edge = mask & ~_erode(_erode(mask))
    obj[edge] *= 0.35
    obj *= mask[..., None]
    blocks = (image_size, SUPERSAMPLE, image_size, SUPERSAMPLE)
    coverage = mask.reshape(blocks).mean(axis=(1, 3), dtype=np.float32)
    colour_sum = obj.reshape(*blocks, 3).sum(axis=(1, 3))
    return colour_sum / np.maximum(coverage * SUPERSAMPLE**2, 1e-6)[..., None], coverage


_CORNERS: Final[tuple[tuple[float, float], ...]] = ((-1, -1), (1, -1), (-1, 1), (1, 1))


def render(
    shape: str,
    colour: str,
    pattern: str,
    size: str,
    scene: str,
    around: tuple[str, ...],
    image_size: int,
    rng: np.random.Generator,
) -> NDArray[np.uint8]:
    """Draw one image; every nuisance (jitter, lighting, occlusion, noise) comes from ``rng``."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    xs, ys = _grid(image_size)
    img = _background(scene, xs, ys, rng)

    # Main object: size jitter, position jitter that keeps it mostly inside, small rotation.
    r = SIZES[size] * float(rng.uniform(0.92, 1.08))
    max_shift = max(0.05, 0.95 - r) * 0.7
    cx, cy = (float(c) for c in rng.uniform(-max_shift, max_shift, 2))
    angle = float(rng.uniform(-0.3, 0.3))
    base = np.clip(np.asarray(COLOURS[colour]) + rng.normal(0.0, 0.03, 3), 0.0, 1.0)
    light_dir = rng.normal(0.0, 1.0, 2)
    light_dir /= np.linalg.norm(light_dir) + 1e-6
    ink = (0.95, 0.95, 0.93) if colour in DARK_COLOURS else (0.06, 0.06, 0.06)
    obj, coverage = _draw_object(shape, pattern, r, cx, cy, angle, base, light_dir, ink, image_size, rng)
    img = coverage[..., None] * obj + (1.0 - coverage[..., None]) * img

    # Occluder: a neutral block over part of the object (never a concept, never captioned).
    if rng.random() < 0.25:
        ox, oy = cx + rng.uniform(-r, r), cy + rng.uniform(-r, r)
        hw, hh = rng.uniform(0.15, 0.3) * r + 0.08, rng.uniform(0.15, 0.3) * r + 0.08
        block = (np.abs(xs - ox) < hw) & (np.abs(ys - oy) < hh)
        grey = float(rng.uniform(0.35, 0.7))
        img[block] = np.clip(grey + rng.normal(0, 0.04, 3), 0, 1)

    # Things around, each in its own corner.
    corners = rng.permutation(4)[: len(around)]
    for thing, corner in zip(around, corners, strict=True):
        sx, sy = _CORNERS[int(corner)]
        icx = sx * 0.7 + float(rng.uniform(-0.06, 0.06))
        icy = sy * 0.7 + float(rng.uniform(-0.06, 0.06))
        _draw_icon(img, thing, icx, icy, 0.3, xs, ys)

    # Lighting (gain and colour cast) and sensor noise.
    gain = float(rng.uniform(0.8, 1.15))
    cast = rng.normal(0.0, 0.035, 3)
    img = img * gain + cast[None, None, :]
    img += rng.normal(0.0, 0.03, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
