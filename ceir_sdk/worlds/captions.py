"""Captions built from an image's true concepts with varied templates.

Each concept is mentioned with some probability (captions, like web alt-text, leave things
out), never one that is absent from the image. The class name appears in half of them so that
zero-shot classification with class-name prompts works, as it does for a web-trained CLIP.
"""

from __future__ import annotations

import numpy as np

from ceir_sdk.worlds.vocabulary import strip_article, with_article

SCENE_TEMPLATES: tuple[str, ...] = ("on {}", "in front of {}", "with {} in the background")
AROUND_TEMPLATES: tuple[str, ...] = ("next to {}", "near {}", "with {}")
LEAD_TEMPLATES: tuple[str, ...] = ("a photo of {}", "{}", "there is {}", "an image of {}", "a picture showing {}")
# How often a caption mentions each part. The class name is left out half of the time so that
# captions are told apart by their attribute words, not by the name alone: with the name in
# three captions of four, the small CLIP learned shape and pattern mostly through the class
# (a ladybug is round) and read them poorly on classes where they vary.
CLASS_P = 0.5  # the noun is the class name (else a superclass or "object", half each)
ADJECTIVE_P = 0.8  # each of size, colour, pattern and shape
SCENE_P = 0.6
AROUND_P = 0.75  # each thing around


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def make_caption(
    families: dict[str, str | tuple[str, ...]],
    class_name: str,
    rng: np.random.Generator,
) -> str:
    """One caption for an image whose concepts are ``families`` (see ``WorldSample``)."""
    supers = families["superclass"]
    assert isinstance(supers, tuple)
    around = families["around"]
    assert isinstance(around, tuple)
    scene = str(families["scene"])

    if rng.random() < 0.12:
        # Short captions naming a single concept teach the text tower the one-concept prompts.
        family = ("shape", "colour", "pattern", "size", "scene", "around", "superclass", "class")[int(rng.integers(8))]
        if family == "class":
            return f"a photo of {with_article(class_name)}."
        if family == "superclass":
            return f"a photo of {supers[int(rng.integers(len(supers)))]}."
        if family == "scene":
            return f"something {SCENE_TEMPLATES[int(rng.integers(3))].format(scene)}."
        if family == "around":
            if not around:
                return f"a photo of {with_article(class_name)}."
            thing = around[int(rng.integers(len(around)))]
            return f"an object {AROUND_TEMPLATES[int(rng.integers(3))].format(thing)}."
        return f"a photo of {with_article(str(families[family]) + ' object')}."

    # Adjectives in English order; each one independently left out sometimes.
    adjectives = [str(families[f]) for f in ("size", "colour", "pattern", "shape") if rng.random() < ADJECTIVE_P]
    roll = rng.random()
    if roll < CLASS_P:
        noun = class_name
    elif roll < CLASS_P + (1 - CLASS_P) / 2:
        noun = strip_article(supers[int(rng.integers(len(supers)))])
    else:
        noun = "object"
    noun_phrase = with_article(" ".join([*adjectives, noun]))
    parts = [LEAD_TEMPLATES[int(rng.integers(len(LEAD_TEMPLATES)))].format(noun_phrase)]
    if noun == class_name and rng.random() < 0.2:
        parts[0] += f", {supers[int(rng.integers(len(supers)))]}"
    tail = []
    if rng.random() < SCENE_P:
        tail.append(SCENE_TEMPLATES[int(rng.integers(3))].format(scene))
    shown = [a for a in around if rng.random() < AROUND_P]
    if shown:
        tail.append(AROUND_TEMPLATES[int(rng.integers(3))].format(_join(shown)))
    if rng.random() < 0.5:
        tail.reverse()
    return " ".join(parts + tail) + "."
