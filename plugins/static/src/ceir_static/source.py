"""Concepts the user supplies: a text or JSON file, a Python list, or a world's oracle."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ceir_sdk.concepts.conceptset import KINDS, Concept, ConceptOrigin, ConceptSet
from ceir_sdk.errors import BadInputError
from ceir_sdk.plugin_bases.concept_source import merge_phrases as _merge


def _from_mapping(data: dict[str, Any], where: str) -> list[tuple[str, ConceptOrigin]]:
    """``{class: [phrases]}`` or ``{class: {kind: [phrases]}}``."""
    items: list[tuple[str, ConceptOrigin]] = []
    for class_name, value in data.items():
        if isinstance(value, list):
            items += [(p, ConceptOrigin("file", class_name)) for p in value]
        elif isinstance(value, dict):
            for kind, phrases in value.items():
                if not isinstance(phrases, list):
                    raise BadInputError(f"{where}: {class_name}.{kind} must be a list of phrases")
                items += [(p, ConceptOrigin(str(kind), class_name)) for p in phrases]
        else:
            raise BadInputError(
                f"{where}: the value for {class_name!r} must be a list of phrases or "
                "an object {kind: [phrases]}"
            )
    return items


def read_concept_file(path: Path) -> tuple[list[Concept], ConceptSet | None]:
    """Concepts from .txt (one per line, # comments) or .json (list, mapping, or a saved set)."""
    if not path.is_file():
        raise BadInputError(f"no concept file at {path}; give a .txt (one concept per line) or .json file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() != ".json":
        lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        return _merge([(line, ConceptOrigin("file")) for line in lines if line]), None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path} is not valid JSON ({exc}); fix it or use a .txt file") from None
    if isinstance(data, dict) and data.get("format") == "ceir-concepts":
        saved = ConceptSet.from_dict(data, where=str(path))
        return saved.concepts, saved
    if isinstance(data, list):
        return _merge([(p, ConceptOrigin("file")) for p in data]), None
    if isinstance(data, dict):
        inner = data.get("concepts", data)
        if isinstance(inner, list):
            return _merge([(p, ConceptOrigin("file")) for p in inner]), None
        return _merge(_from_mapping(inner, str(path))), None
    raise BadInputError(f"{path}: expected a JSON list of concepts or an object {{class: [concepts]}}")


class StaticConceptSource:
    """Returns the same concepts whatever the classes; class names go into the provenance."""

    def __init__(self, name: str, concepts: list[Concept], saved: ConceptSet | None = None) -> None:
        if not concepts:
            raise BadInputError(f"{name}: no concepts found; the file or list is empty")
        self.name = name
        self._concepts = concepts
        self._saved = saved

    def generate(
        self, class_names: Sequence[str] = (), *, domain: str | None = None, progress: bool = True
    ) -> ConceptSet:
        if self._saved is not None:
            out = self._saved.replace([Concept(c.phrase, list(c.origins)) for c in self._concepts])
            if class_names:
                out.class_names = list(class_names)
            return out
        return ConceptSet(
            [Concept(c.phrase, list(c.origins)) for c in self._concepts],
            source=self.name,
            class_names=list(class_names),
            generation={"domain": domain} if domain else {},
        )


class WorldConceptSource:
    """The oracle's concepts of a drawn world (ceir_sdk.worlds): features, superclasses, around."""

    def __init__(self, world_name: str, *, descriptive: bool = True) -> None:
        from ceir_sdk.worlds import World

        try:
            self.world = World(world_name)
        except KeyError as exc:
            raise BadInputError(str(exc.args[0]) if exc.args else str(exc)) from None
        self.name = f"static:{world_name}"
        # LLM-like descriptions ("red dotted", "small round") beside the single attributes.
        self.descriptive = descriptive

    def generate(
        self, class_names: Sequence[str] = (), *, domain: str | None = None, progress: bool = True
    ) -> ConceptSet:
        names = list(class_names) or list(self.world.class_names)
        known = set(self.world.class_names) | set(self.world.fine_names)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BadInputError(
                f"{self.name} does not know the classes {unknown}; its classes are {self.world.class_names}"
            )
        items: list[tuple[str, ConceptOrigin]] = []
        for class_name in names:
            by_kind = self.world.oracle.class_concepts(class_name)
            for kind in KINDS:
                items += [(p, ConceptOrigin(kind, class_name)) for p in by_kind.get(kind, [])]
            if self.descriptive:
                from ceir_sdk.worlds.descriptions import class_descriptions

                for phrase, parts in class_descriptions(self.world, class_name).items():
                    kind = "superclasses" if set(parts) & set(by_kind.get("superclasses", [])) else "features"
                    items.append((phrase, ConceptOrigin(kind, class_name)))
        return ConceptSet(
            _merge(items),
            source=self.name,
            class_names=names,
            model="oracle",
            generation={
                "domain": domain or self.world.name,
                "note": "ground-truth concepts of the world"
                + (", plus descriptions combining a class's attributes" if self.descriptive else ""),
            },
        )
