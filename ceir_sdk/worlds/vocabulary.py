"""The concept vocabulary of the drawn worlds: families, phrases and how each one looks.

Every concept is a short lowercase phrase, the form the CEIR concept prompts ask an LLM for.
Families with one value per image are "single" families; ``around`` holds 0-2 things per image
and ``superclass`` is a class-level fact (not drawn, but true of every image of the class).
"""

from __future__ import annotations

from typing import Final

RGB = tuple[float, float, float]

SHAPES: Final[tuple[str, ...]] = (
    "round",
    "square",
    "triangular",
    "diamond-shaped",
    "star-shaped",
    "cross-shaped",
    "oval",
)

# Object colours; values are linear 0..1 RGB before lighting.
COLOURS: Final[dict[str, RGB]] = {
    "red": (0.86, 0.10, 0.10),
    "orange": (1.00, 0.52, 0.05),
    "yellow": (0.97, 0.88, 0.12),
    "green": (0.12, 0.70, 0.18),
    "blue": (0.12, 0.30, 0.92),
    "purple": (0.55, 0.15, 0.72),
    "pink": (1.00, 0.55, 0.78),
    "brown": (0.50, 0.29, 0.10),
    "black": (0.07, 0.07, 0.07),
    "white": (0.96, 0.96, 0.96),
}

# Colours dark enough that a pattern on them is drawn in white rather than black.
DARK_COLOURS: Final[frozenset[str]] = frozenset({"black", "brown", "purple", "blue"})

PATTERNS: Final[tuple[str, ...]] = ("plain", "striped", "dotted", "checkered")

# Bounding radius of the object in normalised image coordinates ([-1, 1] across the image).
SIZES: Final[dict[str, float]] = {"small": 0.38, "medium": 0.55, "large": 0.72}

SCENES: Final[tuple[str, ...]] = (
    "grass",
    "sand",
    "water",
    "the sky",
    "snow",
    "a road",
    "a wooden floor",
    "a brick wall",
)

AROUND: Final[tuple[str, ...]] = (
    "a tree",
    "a flower",
    "the sun",
    "a cloud",
    "a rock",
    "a fence",
    "a house",
)

# Families drawn into every image with exactly one value.
SINGLE_FAMILIES: Final[tuple[str, ...]] = ("shape", "colour", "pattern", "size", "scene")
# Families whose phrases describe what an object looks like (the "features" LLM prompt).
FEATURE_FAMILIES: Final[tuple[str, ...]] = ("shape", "colour", "pattern", "size")
DRAWN_FAMILIES: Final[tuple[str, ...]] = (*SINGLE_FAMILIES, "around")

FAMILY_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "pattern": PATTERNS,
    "size": tuple(SIZES),
    "scene": SCENES,
    "around": AROUND,
}


def article(word: str) -> str:
    """'a' or 'an' for the phrase that starts with ``word`` (enough for this vocabulary)."""
    return "an" if word[:1] in "aeiou" else "a"


def with_article(noun_phrase: str) -> str:
    return f"{article(noun_phrase)} {noun_phrase}"


def strip_article(phrase: str) -> str:
    for prefix in ("a ", "an ", "the "):
        if phrase.startswith(prefix):
            return phrase[len(prefix) :]
    return phrase
