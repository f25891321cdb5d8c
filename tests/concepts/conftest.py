"""Fixtures for the concept tests: the local LLM server and fake API keys."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds llm_server

from llm_server import LLMTestServer

FAKE_OPENAI_KEY = "not-a-real-openai-key-9f8e7d6c5b4a39281706"
FAKE_ANTHROPIC_KEY = "not-a-real-anthropic-key-0a1b2c3d4e5f6071"


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(slow_seconds=1.5) as server:
        yield server


@pytest.fixture
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    return {"openai": FAKE_OPENAI_KEY, "anthropic": FAKE_ANTHROPIC_KEY}


def _make_adapter(provider: str, server: LLMTestServer) -> Any:
    if provider == "openai":
        from ceir_openai.adapter import OpenAIAdapter

        return OpenAIAdapter(base_url=server.openai_base_url)
    from ceir_anthropic.adapter import AnthropicAdapter

    return AnthropicAdapter(base_url=server.anthropic_base_url)


@pytest.fixture
def make_adapter() -> Callable[[str, LLMTestServer], Any]:
    """``make_adapter(provider, server)``: the real SDK adapter pointed at the test server."""
    return _make_adapter
