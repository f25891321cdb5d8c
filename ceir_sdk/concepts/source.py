"""LLMConceptSource: the contracts.ConceptSource every LLM plugin returns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ceir_sdk.concepts.conceptset import ConceptSet
from ceir_sdk.concepts.generate import generate_concepts
from ceir_sdk.concepts.llm import ClientAdapter, RetryPolicy
from ceir_sdk.contracts import LLM_SOURCE_OPTIONS as LLM_SOURCE_OPTIONS  # re-exported
from ceir_sdk.errors import BadInputError


class LLMConceptSource:
    """Generation settings bound to one provider/model; ``generate`` returns a raw set."""

    def __init__(
        self,
        adapter: ClientAdapter,
        *,
        n_samples: int = 2,
        temperature: float = 0.7,
        max_in_flight: int = 8,
        cache_dir: str | Path | None = None,
        prompts: str | Path | None = None,
        kinds: Sequence[str] | None = None,
        max_tokens: int = 400,
        timeout: float = 60.0,
        max_retries: int = 5,
        use_cache: bool = True,
        retry_empty: bool = False,
    ) -> None:
        for option, value, least in (("n_samples", n_samples, 1), ("max_in_flight", max_in_flight, 1),
                                     ("max_retries", max_retries, 0), ("max_tokens", max_tokens, 1)):
            if value < least:
                raise BadInputError(f"{option} must be at least {least}; got {value}")
        if not timeout > 0:
            raise BadInputError(f"timeout must be a positive number of seconds; got {timeout}")
        self.adapter = adapter
        self.name = f"{adapter.provider}:{adapter.model}"
        self.options: dict[str, Any] = {
            "n_samples": n_samples,
            "temperature": temperature,
            "max_in_flight": max_in_flight,
            "cache_dir": cache_dir,
            "prompts": prompts,
            "kinds": kinds,
            "max_tokens": max_tokens,
            "timeout": timeout,
            "retry": RetryPolicy(max_retries=max_retries),
            "use_cache": use_cache,
            "retry_empty": retry_empty,
        }

    def generate(
        self, class_names: Sequence[str], *, domain: str | None = None, progress: bool = True
    ) -> ConceptSet:
        return generate_concepts(self.adapter, class_names, progress=progress, domain=domain, **self.options)

    def __repr__(self) -> str:
        return f"LLMConceptSource({self.name!r})"
