"""Captions built from an image's true concepts with varied templates.

Each concept is mentioned with some probability (captions, like web alt-text, leave things
out), never one that is absent from the image. The class name appears in half of them so that
zero-shot classification with class-name prompts works, as it does for a web-trained CLIP.
"""

from __future__ import annotations

import numpy as np

from ceir_sdk.worlds.nuisance import CAPTION_P, NUISANCE_FAMILIES, TAIL_PHRASES, neutral
from ceir_sdk.worlds.vocabulary import strip_article, with_article

SCENE_TEMPLATES: tuple[str, ...] = ("on {}", "in front of {}", "with {} in the background")
AROUND_TEMPLATES: tuple[str, ...] = ("next to {}", "near {}", "with {}")
LEAD_TEMPLATES: tuple[str, ...] = ("a photo of {}", "{}", "there is {}", "an image of {}", "a picture showing {}")
# Leads that say nothing about how the picture was made (for images that are not photos).
PLAIN_LEADS: tuple[str, ...] = ("{}", "there is {}", "an image of {}", "a picture showing {}")
STYLE_NOUNS: dict[str, str] = {"photo": "photo", "painting": "painting", "cartoon": "cartoon",
                               "vintage photo": "vintage photo"}
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


def style_lead(style: str | None, camera: str | None) -> str:
    """The lead template naming the style and/or camera fault ("a blurry painting of {}").

    ``None`` leaves that family unnamed; both None gives a lead that names neither.
    """
    if style is None and camera is None:
        return "a picture of {}"
    noun = STYLE_NOUNS[style] if style is not None else "picture"
    words = f"{camera} {noun}" if camera is not None else noun
    return f"{with_article(words)} of {{}}"


def nuisance_caption(family: str, value: str) -> str:
    """A short caption naming one nuisance alone (also the zero-shot prompt for it)."""
    if family == "style":
        return style_lead(value, None).format("an object") + "."
    if family == "camera":
        return style_lead(None, value).format("an object") + "."
    return f"an object {TAIL_PHRASES[value]}."


def _mentioned(nuisances: dict[str, str], rng: np.random.Generator) -> dict[str, str]:
    """The non-neutral nuisances this caption names (each with its CAPTION_P); "photo" too."""
    out = {}
    for family in NUISANCE_FAMILIES:
        value = nuisances.get(family, neutral(family))
        draw = rng.random()  # drawn for every family, so one family's roll never shifts another's
        if value == neutral(family) and not (family == "style" and value == "photo"):
            continue
        if draw < CAPTION_P[family]:
            out[family] = value
    return out


def make_caption(
    families: dict[str, str | tuple[str, ...]],
    class_name: str,
    rng: np.random.Generator,
    nuisances: dict[str, str] | None = None,
) -> str:
    """One caption for an image whose concepts are ``families`` and nuisances ``nuisances``.

    Nuisances are named as alt-text names them: the style and camera in the lead ("a blurry
    painting of ..."), light, overlays and weather after the object ("... at night, in fog").
    A caption never says "photo" of a picture that is not one.
    """
    nuisances = nuisances or {}
    said = _mentioned(nuisances, rng)
    photo = nuisances.get("style", "photo") == "photo"
    shown_nuisance = [f for f in NUISANCE_FAMILIES if nuisances.get(f, neutral(f)) != neutral(f)]
    if shown_nuisance and rng.random() < 0.08:
        family = shown_nuisance[int(rng.integers(len(shown_nuisance)))]
        return nuisance_caption(family, nuisances[family])
    supers = families["superclass"]
    assert isinstance(supers, tuple)
    around = families["around"]
    assert isinstance(around, tuple)
    scene = str(families["scene"])

    lead_short = "a photo of {}" if photo else "a picture of {}"
    if rng.random() < 0.12:
        # Short captions naming a single concept teach the text tower the one-concept prompts.
        family = ("shape", "colour", "pattern", "size", "scene", "around", "superclass", "class")[int(rng.integers(8))]
        if family == "class":
            return lead_short.format(with_article(class_name)) + "."
        if family == "superclass":
            return lead_short.format(supers[int(rng.integers(len(supers)))]) + "."
        if family == "scene":
            return f"something {SCENE_TEMPLATES[int(rng.integers(3))].format(scene)}."
        if family == "around":
            if not around:
                return lead_short.format(with_article(class_name)) + "."
            thing = around[int(rng.integers(len(around)))]
            return f"an object {AROUND_TEMPLATES[int(rng.integers(3))].format(thing)}."
        return lead_short.format(with_article(str(families[family]) + " object")) + "."

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
    lead_roll = int(rng.integers(len(LEAD_TEMPLATES)))
    named_style = said.get("style") if said.get("style") != "photo" else None
    if named_style is not None or "camera" in said:
        lead = style_lead(named_style if named_style is not None else ("photo" if "style" in said else None),
                          said.get("camera"))
    elif "style" in said:  # a photo, said so
        lead = "a photo of {}"
    else:
        leads = LEAD_TEMPLATES if photo else PLAIN_LEADS
        lead = leads[lead_roll % len(leads)]
    parts = [lead.format(noun_phrase)]
    if noun == class_name and rng.random() < 0.2:
        parts[0] += f", {supers[int(rng.integers(len(supers)))]}"
    tail = []
    if rng.random() < SCENE_P:
        tail.append(SCENE_TEMPLATES[int(rng.integers(3))].format(scene))
    shown = [a for a in around if rng.random() < AROUND_P]
    if shown:
        tail.append(AROUND_TEMPLATES[int(rng.integers(3))].format(_join(shown)))
    for family in ("lighting", "overlay", "weather"):
        if family in said:
            tail.append(TAIL_PHRASES[said[family]])
    if rng.random() < 0.5:
        tail.reverse()
    return " ".join(parts + tail) + "."
