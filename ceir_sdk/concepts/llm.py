"""What every LLM concept source shares: requests, replies, errors, secret redaction, retries.

A provider plugin supplies a :class:`ClientAdapter` that performs one HTTP call with its
vendor SDK (SDK retries off) and maps the SDK's exceptions to the errors below; the retry
policy, the cache and the concurrency live here so every provider behaves the same.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ceir_sdk.errors import CeirError

log = logging.getLogger("ceir_sdk.concepts")

T = TypeVar("T")


@dataclass(frozen=True)
class ChatRequest:
    system: str
    messages: tuple[tuple[str, str], ...]  # (role, content) turns, user first and last
    temperature: float
    max_tokens: int
    sample: int = 0  # which of the N samples: part of the cache key, not sent

    def as_key_fields(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "messages": [list(m) for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "sample": self.sample,
        }


@dataclass
class ChatReply:
    text: str | None
    refusal: str | None = None  # the provider flagged a refusal (OpenAI refusal, Anthropic stop_reason)
    usage: dict[str, int] = field(default_factory=dict)  # input_tokens / output_tokens when reported
    model: str | None = None  # the model that answered, as the API reports it


class ClientAdapter(Protocol):
    provider: str  # "openai", "anthropic"
    model: str
    endpoint: str | None  # base URL when not the provider's default (part of the cache key)
    api_key_env: str  # the environment variable the key comes from

    def complete(self, request: ChatRequest, *, timeout: float) -> ChatReply: ...

    def secrets(self) -> list[str]:
        """Strings that must never appear in an error or a file (the API key)."""
        ...


# -- errors -------------------------------------------------------------------
class LLMError(CeirError):
    """A request to a language model failed for good."""


class LLMAuthError(LLMError):
    """The API key is missing or was rejected."""


class LLMRequestError(LLMError):
    """The API refused the request itself (bad model name, bad parameters): retrying won't help."""


class RetryableError(LLMError):
    """A failure worth retrying: rate limit, server error, timeout, connection, garbled reply."""

    def __init__(self, message: str, *, retry_after: float | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.kind = kind


def missing_key_error(env_var: str, provider: str) -> LLMAuthError:
    return LLMAuthError(
        f"no API key for {provider}: set the environment variable {env_var} "
        f"(e.g. `export {env_var}=...`); keys are read only from the environment"
    )


def rejected_key_error(env_var: str, provider: str, status: int | None) -> LLMAuthError:
    return LLMAuthError(
        f"{provider} rejected the API key (HTTP {status}): check the environment variable "
        f"{env_var}; it must hold a valid key for this endpoint"
    )


def url_secrets(url: str | None) -> list[str]:
    """The credential parts of a base URL (user, password, query values), to keep out of messages."""
    if not url:
        return []
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    found = [parts.password or "", parts.username or ""]
    found += [value for _, value in parse_qsl(parts.query)]
    return [secret for secret in found if len(secret) >= 4]


def check_key_destination(provider: str, key: str, env_var: str, default_env_var: str, base_url: str | None) -> None:
    """Say so when the provider's own key is about to go to another server: a compatible
    server (vLLM, Ollama) seldom needs it, and the user may not expect it to be sent there."""
    if not key or base_url is None or env_var != default_env_var:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    where = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    plain = " over plain http" if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1") \
        else ""
    log.warning("%s: sending the key in %s to %s%s; pass --api-key-env NAME (api_key_env=) to choose the key "
                "that goes to this server", provider, env_var, where, plain)


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret, and any long fragment of it, with '***'."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "***")
        # Vendors echo masked keys ("sk-abc...wxyz"); drop any 8+ character run of the key too.
        if len(secret) >= 16:
            for size in (12, 8):
                for start in range(0, len(secret) - size + 1):
                    piece = secret[start : start + size]
                    if piece in text:
                        text = text.replace(piece, "***")
    return text


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 60.0  # an honoured Retry-After above this is capped to it

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        # exponential backoff with jitter so parallel workers do not retry in lockstep
        backoff = self.base_delay * (2**attempt)
        return min(self.max_delay, backoff * (0.75 + 0.5 * random.random()))


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, RetryableError, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, retrying :class:`RetryableError` with backoff."""
    attempt = 0
    while True:
        try:
            return fn()
        except RetryableError as exc:
            if attempt >= policy.max_retries:
                raise LLMError(f"{exc} (gave up after {attempt + 1} attempts)") from None
            wait = policy.delay(attempt, exc.retry_after)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
            attempt += 1


def error_for_status(
    status: int, headers: Any, detail: str, *, provider: str, env_var: str, secrets: list[str]
) -> LLMError:
    """Map an HTTP error status to the error the retry loop and the user should see."""
    detail = redact(detail, secrets)[:300]
    if status in (401, 403):
        return rejected_key_error(env_var, provider, status)
    if status in (408, 409, 425, 429) or status >= 500:
        kind = "rate limited" if status == 429 else "server error"
        return RetryableError(f"{provider}: {kind} (HTTP {status})", retry_after=parse_retry_after(headers),
                              kind=kind)
    return LLMRequestError(
        f"{provider} refused the request (HTTP {status}): {detail}. Check the model name and options."
    )
