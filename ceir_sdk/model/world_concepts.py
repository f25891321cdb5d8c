"""Concept sets for the drawn worlds, taken from the world oracle (no LLM needed offline)."""

from __future__ import annotations

from typing import Any


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
