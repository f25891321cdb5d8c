"""A local server speaking the OpenAI chat-completions and Anthropic messages APIs (tests, benchmarks)."""

from .server import LLMTestServer

__all__ = ["LLMTestServer"]
