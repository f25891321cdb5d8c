"""One messages call through the official anthropic SDK (its own retries off)."""

from __future__ import annotations

import inspect
import os
from typing import Any

import anthropic

from ceir_sdk.concepts.llm import (
    ChatReply,
    ChatRequest,
    RetryableError,
    check_key_destination,
    error_for_status,
    missing_key_error,
    redact,
    url_secrets,
)

# A current Sonnet the installed SDK knows (anthropic.types.Model); tests check it is listed.
DEFAULT_MODEL = "claude-sonnet-5-5"
API_KEY_ENV = "ANTHROPIC_API_KEY"


class AnthropicAdapter:
    provider = "anthropic"

    def __init__(
        self, model: str = DEFAULT_MODEL, *, base_url: str | None = None, api_key_env: str = API_KEY_ENV
    ) -> None:
        self.model = model
        self.endpoint = base_url
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise missing_key_error(api_key_env, "anthropic")
        self._key = key
        check_key_destination("anthropic", key, api_key_env, API_KEY_ENV, base_url)
        self._client = anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0)
        # Recent SDKs (and models) have no temperature parameter; older ones do.
        self._temperature = "temperature" in inspect.signature(self._client.messages.create).parameters
        self.notes: list[str] = []
        if not self._temperature:
            self.notes.append(
                "temperature not sent: the installed anthropic SDK's Messages API has no temperature "
                "parameter; samples differ by the model's own sampling"
            )

    def secrets(self) -> list[str]:
        return [self._key, *url_secrets(self.endpoint)]

    def complete(self, request: ChatRequest, *, timeout: float) -> ChatReply:
        messages: list[Any] = [{"role": role, "content": content} for role, content in request.messages]
        extra: dict[str, Any] = {"temperature": request.temperature} if self._temperature else {}
        try:
            response = self._client.messages.create(
                model=self.model,
                system=request.system,
                messages=messages,
                max_tokens=request.max_tokens,
                timeout=timeout,
                **extra,
            )
        except anthropic.APIStatusError as exc:
            raise error_for_status(
                exc.status_code, exc.response.headers, str(exc.message), provider="anthropic",
                env_var=self.api_key_env, secrets=self.secrets(),
            ) from None
        except anthropic.APITimeoutError:
            raise RetryableError(f"anthropic: no reply within {timeout} s", kind="timeout") from None
        except anthropic.APIConnectionError as exc:
            raise RetryableError(
                redact(f"anthropic: cannot reach {self.endpoint or 'api.anthropic.com'} ({exc})", self.secrets()),
                kind="connection",
            ) from None
        except (anthropic.APIResponseValidationError, ValueError) as exc:
            raise RetryableError(f"anthropic: malformed reply ({type(exc).__name__})", kind="malformed") from None
        content = getattr(response, "content", None)
        if content is None:
            raise RetryableError("anthropic: reply without content", kind="malformed")
        text = "".join(getattr(block, "text", "") for block in content if getattr(block, "type", "") == "text")
        refusal = (text or "refused") if response.stop_reason == "refusal" else None
        usage: dict[str, int] = {}
        if response.usage is not None:
            usage = {"input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens}
        return ChatReply(text=text, refusal=refusal, usage=usage, model=response.model)
