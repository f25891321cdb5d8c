"""Concept sets for the drawn worlds, taken from the world oracle (no LLM needed offline)."""

from __future__ import annotations

from typing import Any

# How the bundled world CLIP (trained on captions only) best reads a concept phrase: the phrase as
# is and as "a photo of {}.", averaged. Chosen on development splits carved from the training
# images: "{}" alone clustered best but its top explanation concepts were true only 0.78 of the
# time on world10; "a photo of {}." explained best (0.85) but clustered worst; the average kept
# both (explanations 0.85, world10 latent NMI 0.765 against 0.770 and 0.760 for the two alone).
WORLD_CONCEPT_TEMPLATES = ("{}", "a photo of {}.")


def oracle_concepts(world: Any, *, include_class_names: bool = False, descriptive: bool = True) -> list[str]:
    """Union over the domain's classes of their features, superclasses and things around,
    plus (``descriptive``) LLM-like descriptions combining each class's attributes.

    Class names are left out unless asked for (the reference CEIR code adds them; doing so
    leaks label information into the concept set and must be reported).
    """
    names = list(world.class_names)
    phrases: list[str] = []
    for name in names:
        groups = world.oracle.class_concepts(name)
        for key in ("features", "superclasses", "around"):
            phrases.extend(groups.get(key, []))
        if descriptive:
            from ceir_sdk.worlds.descriptions import class_descriptions

            phrases.extend(class_descriptions(world, name))
    lowered = {n.lower() for n in names}
    phrases = [p for p in dict.fromkeys(phrases) if p.lower() not in lowered]
    if include_class_names:
        phrases.extend(names)
    return list(dict.fromkeys(phrases))


def label_information(*, include_class_names: bool, source: str = "world oracle") -> dict[str, Any]:
    return {
        "concept_source": source,
        "class_names_in_prompts": source != "world oracle",
        "class_names_in_concepts": include_class_names,
        "labels_used_in_fit": False,
        "note": "the oracle lists each class's concepts, so class membership shaped the concept set",
    }
