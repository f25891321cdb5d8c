"""Concepts from a registered concept source by name, generated and filtered: what ``ceir demo
--concepts SOURCE`` and ``ceir fit --concepts SOURCE`` both do (one place, so the two agree)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ceir_sdk.concepts.conceptset import ConceptSet, FilterStep
from ceir_sdk.errors import PluginError

#: The bundled world backbone: its tiny text space puts most phrases above the similarity
#: cutoffs (see concepts_from_source), so concepts are compared with the sentence model alone.
WORLD_BACKBONE = "open-clip:ceir-world"


@dataclass
class SourcedConcepts:
    concept_set: ConceptSet  # filtered
    steps: list[FilterStep]  # what each filter did
    raw_count: int  # phrases the source gave, before filtering
    label_information: dict[str, Any]
    similarity: str  # how near-duplicates and class names were measured, for the report


def is_concept_source(spec: str) -> bool:
    """Whether ``spec`` (``name`` or ``name:rest``) names a registered concept source."""
    from ceir_sdk.plugins import get_host

    return spec.partition(":")[0] in get_host().registrations("concept_source")


def concept_source_names() -> list[str]:
    from ceir_sdk.plugins import get_host

    return sorted(get_host().registrations("concept_source"))


def concepts_from_source(source: str, class_names: Sequence[str], *, domain: str | None = None,
                         backbone_name: str | None = None, backbone: Any = None,
                         progress: bool = True) -> SourcedConcepts:
    """The filtered concept set (with its filter steps and label information) from the source
    ``source`` (e.g. ``static:world10``, ``openai:gpt-4o``) asked about ``class_names``.

    Label-free CBM's similarity cutoffs (0.85 / 0.9) were set on real CLIP text encoders; the
    bundled world CLIP's 128-d text space puts most phrases above them ('red' ~ 'blue' at 0.93),
    so with that backbone similarity is measured with the sentence model alone. Other backbones
    use both their text encoder and, when installed, the sentence model.
    """
    from ceir_sdk.concepts.processing import process_concepts
    from ceir_sdk.plugins import get_concept_source, get_host

    raw = get_concept_source(source).generate(list(class_names), domain=domain, progress=progress)
    if not isinstance(raw, ConceptSet):
        registration = get_host().registrations("concept_source").get(source.partition(":")[0])
        plugin = registration.plugin if registration is not None else "?"
        raise PluginError(f"concept source {source!r} (plugin {plugin!r}) returned a {type(raw).__name__}, not a "
                          "ConceptSet: it breaks the concept-source contract (docs/plugins.md); report it to the "
                          "plugin's authors")
    similarity_backbone = None if backbone_name == WORLD_BACKBONE else backbone
    concept_set, steps = process_concepts(raw, list(class_names), backbone=similarity_backbone,
                                          sentence_model=True if similarity_backbone is None else "auto")
    uses_llm = not source.startswith("static")
    label_information = {
        "class_names_in_prompts": uses_llm,
        "class_names_in_concept_set": False,
        "concept_source": source,
        "labels_used_for_fitting": False,
        "note": (
            "the static source reads the world's per-class concept lists, which were written knowing "
            "the classes (as an LLM prompted with class names would)"
            if not uses_llm
            else "the LLM was prompted with the class names"
        ),
    }
    similarity = ("sentence model only (the world CLIP's text space is too compressed for Label-free CBM's "
                  "thresholds)" if similarity_backbone is None else "sentence model and backbone text encoder")
    return SourcedConcepts(concept_set, steps, len(raw), label_information, similarity)
