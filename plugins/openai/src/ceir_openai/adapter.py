"""One chat-completions call through the official openai SDK (its own retries off)."""

from __future__ import annotations

import os
from typing import Any

import openai

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

# A GPT-4-family model the installed SDK knows (openai.types.ChatModel); tests check it is listed.
DEFAULT_MODEL = "gpt-4.1"
API_KEY_ENV = "OPENAI_API_KEY"
# OpenAI-compatible servers (vLLM, Ollama, LM Studio) usually want no key; the SDK needs a string.
NO_KEY_PLACEHOLDER = "no-key"


class OpenAIAdapter:
    provider = "openai"

    def __init__(
        self, model: str = DEFAULT_MODEL, *, base_url: str | None = None, api_key_env: str = API_KEY_ENV
    ) -> None:
        self.model = model
        self.endpoint = base_url
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "").strip()
        if not key and base_url is None:
            raise missing_key_error(api_key_env, "openai")
        self._key = key
        check_key_destination("openai", key, api_key_env, API_KEY_ENV, base_url)
        self._client = openai.OpenAI(api_key=key or NO_KEY_PLACEHOLDER, base_url=base_url, max_retries=0)

    def secrets(self) -> list[str]:
        return ([self._key] if self._key else []) + url_secrets(self.endpoint)

    def complete(self, request: ChatRequest, *, timeout: float) -> ChatReply:
        messages: list[Any] = [{"role": "system", "content": request.system}]
        messages += [{"role": role, "content": content} for role, content in request.messages]
        # The official API wants max_completion_tokens (newer models reject max_tokens);
        # compatible servers know max_tokens best.
        limit: dict[str, Any] = {"max_tokens" if self.endpoint else "max_completion_tokens": request.max_tokens}
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=request.temperature,
                timeout=timeout,
                **limit,
            )
        except openai.APIStatusError as exc:
            if exc.status_code == 401 and not self._key:
                raise missing_key_error(self.api_key_env, "openai") from None
            raise error_for_status(
                exc.status_code, exc.response.headers, str(exc.message), provider="openai",
                env_var=self.api_key_env, secrets=self.secrets(),
            ) from None
        except openai.APITimeoutError:
            raise RetryableError(f"openai: no reply within {timeout} s", kind="timeout") from None
        except openai.APIConnectionError as exc:
            raise RetryableError(
                redact(f"openai: cannot reach {self.endpoint or 'api.openai.com'} ({exc})", self.secrets()),
                kind="connection",
            ) from None
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise RetryableError(f"openai: malformed reply ({type(exc).__name__})", kind="malformed") from None
        if not getattr(response, "choices", None):
            raise RetryableError("openai: reply without choices", kind="malformed")
        message = response.choices[0].message
        usage: dict[str, int] = {}
        if response.usage is not None:
            usage = {"input_tokens": response.usage.prompt_tokens, "output_tokens": response.usage.completion_tokens}
        return ChatReply(
            text=message.content,
            refusal=getattr(message, "refusal", None),
            usage=usage,
            model=response.model,
        )
