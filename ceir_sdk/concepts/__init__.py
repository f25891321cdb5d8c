"""Concept sets: generation with LLMs, processing (filters with reports), provenance.

Vendor SDKs live in the plugins (ceir-openai, ceir-anthropic, ceir-static); this package
holds what they share and imports none of them.
"""

from __future__ import annotations

from ceir_sdk.concepts.conceptset import Concept, ConceptOrigin, ConceptSet, FilterStep
from ceir_sdk.concepts.generate import generate_concepts
from ceir_sdk.concepts.llm import (
    ChatReply,
    ChatRequest,
    ClientAdapter,
    LLMAuthError,
    LLMError,
    LLMRequestError,
    RetryableError,
    RetryPolicy,
)
from ceir_sdk.concepts.parsing import ParsedReply, parse_reply
from ceir_sdk.concepts.processing import (
    CLASS_SIM_CUTOFF,
    DUPLICATE_SIM_CUTOFF,
    MAX_LENGTH,
    concept_key,
    filter_counts,
    normalise_phrase,
    process_concepts,
)
from ceir_sdk.concepts.prompts import Prompts, load_prompts
from ceir_sdk.concepts.source import LLMConceptSource

__all__ = [
    "CLASS_SIM_CUTOFF",
    "DUPLICATE_SIM_CUTOFF",
    "MAX_LENGTH",
    "ChatReply",
    "ChatRequest",
    "ClientAdapter",
    "Concept",
    "ConceptOrigin",
    "ConceptSet",
    "FilterStep",
    "LLMAuthError",
    "LLMConceptSource",
    "LLMError",
    "LLMRequestError",
    "ParsedReply",
    "Prompts",
    "RetryPolicy",
    "RetryableError",
    "concept_key",
    "filter_counts",
    "generate_concepts",
    "load_prompts",
    "normalise_phrase",
    "parse_reply",
    "process_concepts",
]
