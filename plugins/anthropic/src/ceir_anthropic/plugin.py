"""Entry point of the anthropic plugin: "anthropic:MODEL" concept sources (light imports only)."""

from __future__ import annotations

from typing import Any

from ceir_sdk import hookimpl
from ceir_sdk.contracts import LLM_SOURCE_OPTIONS

_ADAPTER_OPTIONS = ("base_url", "api_key_env")


def make_source(spec: str | None, **options: Any) -> Any:
    """``anthropic[:MODEL]``; options base_url, api_key_env, and the LLMConceptSource settings."""
    from ceir_anthropic.adapter import DEFAULT_MODEL, AnthropicAdapter
    from ceir_sdk.concepts import LLMConceptSource

    adapter_options = {k: options.pop(k) for k in _ADAPTER_OPTIONS if k in options}
    return LLMConceptSource(AnthropicAdapter(spec or DEFAULT_MODEL, **adapter_options), **options)


@hookimpl
def register_concept_sources(register: Any) -> None:
    register("anthropic", make_source, description="Claude models through the anthropic SDK",
             options=LLM_SOURCE_OPTIONS + _ADAPTER_OPTIONS)
