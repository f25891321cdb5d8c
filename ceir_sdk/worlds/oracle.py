"""The world's oracle: the true concepts of any image and concept lists per class.

It answers the three questions the CEIR concept prompts put to an LLM (features, superclasses,
things around), so it can stand in for an LLM in tests, the static concept source and the LLM
test server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ceir_sdk.worlds.domains import ClassSpec, DomainSpec
from ceir_sdk.worlds.vocabulary import FAMILY_VALUES, FEATURE_FAMILIES

if TYPE_CHECKING:
    from ceir_sdk.worlds.world import WorldSample


class Oracle:
    """Ground truth about a domain's concepts."""

    def __init__(self, domain: DomainSpec) -> None:
        self.domain = domain
        supers = sorted({s for c in domain.classes for s in c.superclasses})
        self._families: dict[str, list[str]] = {f: list(v) for f, v in FAMILY_VALUES.items()}
        self._families["superclass"] = supers
        self._family_of = {c: f for f, cs in self._families.items() for c in cs}

    def families(self) -> dict[str, list[str]]:
        """family -> concept phrases (shape, colour, pattern, size, scene, around, superclass)."""
        return {f: list(v) for f, v in self._families.items()}

    def family_of(self, concept: str) -> str:
        return self._family_of[concept]

    def all_concepts(self) -> list[str]:
        return sorted(self._family_of)

    def _specs(self, class_name: str) -> list[ClassSpec]:
        coarse = self.domain.coarse or {}
        if class_name in coarse:
            return [self.domain.class_spec(n) for n in coarse[class_name]]
        return [self.domain.class_spec(class_name)]

    def class_concepts(self, class_name: str) -> dict[str, list[str]]:
        """Concepts of a fine class (or the union over a coarse class's members).

        features: the class's preferred shape, colour, pattern and size values; superclasses:
        its superclass phrases; around: its preferred scenes and things around.
        """
        out: dict[str, list[str]] = {"features": [], "superclasses": [], "around": []}
        for spec in self._specs(class_name):
            for family in FEATURE_FAMILIES:
                out["features"].extend(_ranked(spec.prefs(family)))
            out["superclasses"].extend(spec.superclasses)
            out["around"].extend(_ranked(spec.scene) + _ranked(spec.around))
        return {k: list(dict.fromkeys(v)) for k, v in out.items()}

    def image_concepts(self, sample: WorldSample) -> frozenset[str]:
        """Every concept true of the image: drawn values plus the class's superclasses."""
        out: set[str] = set()
        for value in sample.families.values():
            out.update(value if isinstance(value, tuple) else (value,))
        return frozenset(out)


def _ranked(prefs: dict[str, float]) -> list[str]:
    return [k for k, _ in sorted(prefs.items(), key=lambda kv: -kv[1])]
