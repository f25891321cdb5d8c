"""Class and domain definitions: each class is a noisy distribution over concept values.

A class prefers some values of each family (weights), and with a family-specific noise
probability draws a value uniformly from the whole family instead. The noise is what makes
classes overlap ("a ladybug is usually red and dotted, not always") and, for scene and things
around, what makes those families mostly nuisance with respect to the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from ceir_sdk.worlds.vocabulary import AROUND, COLOURS, PATTERNS, SCENES, SHAPES, SIZES

Prefs = dict[str, float]

# Probability of drawing a family value uniformly at random instead of from the class's
# preferences. Scene and around are mostly noise on purpose: they dominate the pixels but say
# little about the class, which is what keeps raw-embedding clustering far from perfect.
DEFAULT_NOISE: Final[dict[str, float]] = {
    "shape": 0.06,
    "colour": 0.12,
    "pattern": 0.08,
    "size": 0.20,
    "scene": 0.65,
    "around": 0.65,
}


@dataclass(frozen=True)
class ClassSpec:
    """One fine class: preferred values per drawn family plus its superclass phrases."""

    name: str
    superclasses: tuple[str, ...]
    shape: Prefs
    colour: Prefs
    pattern: Prefs
    size: Prefs
    scene: Prefs
    around: Prefs

    def prefs(self, family: str) -> Prefs:
        value: Prefs = getattr(self, family)
        return value


@dataclass(frozen=True)
class DomainSpec:
    """A domain: fine classes, optionally grouped into coarse labels (CIFAR-100-20 style)."""

    name: str
    classes: tuple[ClassSpec, ...]
    # coarse name -> fine class names; None when labels are the fine classes themselves.
    coarse: dict[str, tuple[str, ...]] | None = None
    noise: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_NOISE))

    @property
    def fine_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def label_names(self) -> list[str]:
        return list(self.coarse) if self.coarse is not None else self.fine_names

    def class_spec(self, name: str) -> ClassSpec:
        for spec in self.classes:
            if spec.name == name:
                return spec
        raise KeyError(f"unknown class {name!r} in domain {self.name!r}")


def _spec(
    name: str,
    superclasses: tuple[str, ...],
    shape: Prefs,
    colour: Prefs,
    pattern: Prefs,
    size: Prefs,
    scene: Prefs,
    around: Prefs,
) -> ClassSpec:
    return ClassSpec(name, superclasses, shape, colour, pattern, size, scene, around)


# The ten hand-written classes of world10; they reappear as fine classes of world100_20.
_HAND: Final[tuple[ClassSpec, ...]] = (
    _spec(
        "ladybug",
        ("an insect", "an animal"),
        {"round": 1},
        {"red": 0.85, "orange": 0.15},
        {"dotted": 1},
        {"small": 1},
        {"grass": 1},
        {"a flower": 0.6, "a tree": 0.4},
    ),
    _spec(
        "bee",
        ("an insect", "an animal"),
        {"oval": 1},
        {"yellow": 0.9, "orange": 0.1},
        {"striped": 1},
        {"small": 1},
        {"the sky": 0.6, "grass": 0.4},
        {"a flower": 0.7, "the sun": 0.3},
    ),
    _spec(
        "zebra",
        ("a wild mammal", "an animal"),
        {"oval": 1},
        {"white": 1},
        {"striped": 1},
        {"large": 1},
        {"grass": 0.5, "sand": 0.5},
        {"a tree": 0.7, "a rock": 0.3},
    ),
    _spec(
        "chessboard",
        ("a game",),
        {"square": 1},
        {"white": 0.5, "black": 0.5},
        {"checkered": 1},
        {"medium": 0.6, "large": 0.4},
        {"a wooden floor": 1},
        {"a house": 1},
    ),
    _spec(
        "pizza",
        ("a baked good", "food"),
        {"triangular": 1},
        {"orange": 0.6, "yellow": 0.4},
        {"dotted": 1},
        {"medium": 1},
        {"a wooden floor": 1},
        {"a house": 0.5, "a cloud": 0.5},
    ),
    _spec(
        "traffic sign",
        ("a sign",),
        {"diamond-shaped": 1},
        {"yellow": 0.7, "orange": 0.3},
        {"plain": 1},
        {"medium": 1},
        {"a road": 1},
        {"a fence": 0.5, "a house": 0.5},
    ),
    _spec(
        "starfish",
        ("a sea animal", "an animal"),
        {"star-shaped": 1},
        {"orange": 0.5, "pink": 0.3, "red": 0.2},
        {"plain": 0.7, "dotted": 0.3},
        {"small": 1},
        {"sand": 0.6, "water": 0.4},
        {"a rock": 0.7, "the sun": 0.3},
    ),
    _spec(
        "pharmacy sign",
        ("a sign",),
        {"cross-shaped": 1},
        {"green": 0.85, "red": 0.15},
        {"plain": 1},
        {"medium": 1},
        {"a brick wall": 1},
        {"a house": 0.6, "a fence": 0.4},
    ),
    _spec(
        "beach ball",
        ("a toy", "a ball"),
        {"round": 1},
        {"blue": 0.4, "red": 0.3, "yellow": 0.3},
        {"striped": 1},
        {"medium": 1},
        {"sand": 0.7, "water": 0.3},
        {"the sun": 0.6, "a cloud": 0.4},
    ),
    _spec(
        "watermelon",
        ("a fruit", "food"),
        {"oval": 1},
        {"green": 1},
        {"striped": 1},
        {"large": 1},
        {"grass": 0.6, "a wooden floor": 0.4},
        {"a fence": 1},
    ),
)

# Coarse groups of world100_20: (coarse name, superclass phrases, five fine class names).
_GROUPS: Final[tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = (
    ("insects", ("an insect", "an animal"), ("ladybug", "bee", "butterfly", "beetle", "caterpillar")),
    ("sea animals", ("a sea animal", "an animal"), ("starfish", "crab", "jellyfish", "octopus", "seashell")),
    ("fish", ("a fish", "an animal"), ("goldfish", "shark", "clownfish", "trout", "pufferfish")),
    ("birds", ("a bird", "an animal"), ("parrot", "penguin", "owl", "flamingo", "duck")),
    ("large mammals", ("a wild mammal", "an animal"), ("zebra", "elephant", "giraffe", "hippo", "camel")),
    ("small mammals", ("a furry animal", "an animal"), ("mouse", "rabbit", "squirrel", "hamster", "hedgehog")),
    ("fruit", ("a fruit", "food"), ("watermelon", "apple", "tangerine", "banana", "lemon")),
    ("vegetables", ("a vegetable", "food"), ("carrot", "tomato", "cucumber", "pumpkin", "pepper")),
    ("baked goods", ("a baked good", "food"), ("pizza", "cookie", "cake", "donut", "bread")),
    ("flowers", ("a plant",), ("rose", "tulip", "sunflower", "daisy", "orchid")),
    ("kitchenware", ("kitchenware",), ("cup", "plate", "bowl", "kettle", "pan")),
    ("furniture", ("furniture",), ("chair", "table", "bed", "sofa", "wardrobe")),
    ("road vehicles", ("a motor vehicle", "a vehicle"), ("car", "bus", "truck", "bicycle", "motorcycle")),
    ("other vehicles", ("a vehicle",), ("boat", "airplane", "train", "rocket", "tractor")),
    ("toys", ("a toy",), ("beach ball", "teddy bear", "kite", "yo-yo", "rattle")),
    ("games", ("a game",), ("chessboard", "dice", "playing card", "domino", "puzzle piece")),
    ("signs", ("a sign",), ("traffic sign", "pharmacy sign", "stop sign", "arrow sign", "exit sign")),
    ("clothing", ("clothing",), ("shirt", "hat", "sock", "scarf", "glove")),
    ("tools", ("a tool",), ("hammer", "wrench", "saw", "screwdriver", "shovel")),
    ("musical instruments", ("a musical instrument",), ("drum", "guitar", "piano", "trumpet", "violin")),
)


def _generated_classes() -> tuple[ClassSpec, ...]:
    """Fine classes of world100_20: hand-written ones kept, the rest drawn from a fixed seed.

    Members of a coarse group share a preferred shape pair and scene pair (what a superclass
    has in common); colour, pattern and size vary per fine class. The (shape, colour, pattern)
    mode of every fine class is unique, so fine classes stay distinguishable in principle.
    """
    rng = np.random.default_rng(20_100)
    hand = {c.name: c for c in _HAND}
    used = {(next(iter(c.shape)), next(iter(c.colour)), next(iter(c.pattern))) for c in _HAND}
    out: list[ClassSpec] = []
    for _coarse, supers, names in _GROUPS:
        group_shapes = [str(s) for s in rng.choice(SHAPES, size=2, replace=False)]
        group_scenes = [str(s) for s in rng.choice(SCENES, size=2, replace=False)]
        for name in names:
            if name in hand:
                # Keep the hand-written look, but use the group's superclass phrases.
                h = hand[name]
                out.append(_spec(name, supers, h.shape, h.colour, h.pattern, h.size, h.scene, h.around))
                continue
            while True:
                shape = group_shapes[int(rng.integers(2))]
                colour = str(rng.choice(list(COLOURS)))
                pattern = str(rng.choice(PATTERNS))
                if (shape, colour, pattern) not in used:
                    used.add((shape, colour, pattern))
                    break
            size = str(rng.choice(list(SIZES)))
            arounds = [str(a) for a in rng.choice(AROUND, size=2, replace=False)]
            out.append(
                _spec(
                    name,
                    supers,
                    {shape: 1.0},
                    {colour: 1.0},
                    {pattern: 1.0},
                    {size: 1.0},
                    {group_scenes[0]: 0.6, group_scenes[1]: 0.4},
                    {arounds[0]: 0.6, arounds[1]: 0.4},
                )
            )
    return tuple(out)


def _build_domains() -> dict[str, DomainSpec]:
    world100 = _generated_classes()
    by_name = {c.name: c for c in world100}
    # world10 uses exactly the same specs (incl. superclass phrases) as world100_20.
    world10 = tuple(by_name[c.name] for c in _HAND)
    coarse = {g: names for g, _s, names in _GROUPS}
    return {
        "world10": DomainSpec("world10", world10),
        "world100_20": DomainSpec("world100_20", world100, coarse=coarse),
    }


DOMAINS: Final[dict[str, DomainSpec]] = _build_domains()
