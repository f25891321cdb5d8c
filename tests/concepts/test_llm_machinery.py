from __future__ import annotations

import json
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from ceir_sdk.concepts.cache import ReplyCache, cache_key
from ceir_sdk.concepts.llm import (
    LLMAuthError,
    LLMError,
    LLMRequestError,
    RetryableError,
    RetryPolicy,
    call_with_retries,
    error_for_status,
    parse_retry_after,
    redact,
)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert 8 <= parse_retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)}) <= 10.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_backoff_grows_and_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0)
    delays = [policy.delay(a, None) for a in range(4)]
    assert all(0.75 * 2**a <= d <= 1.25 * 2**a for a, d in enumerate(delays))
    assert policy.delay(0, 7.0) == 7.0
    assert policy.delay(0, 3600.0) == 30.0


def test_call_with_retries_sleeps_as_told_and_gives_up() -> None:
    slept: list[float] = []
    calls = iter([RetryableError("busy", retry_after=2.0), RetryableError("busy"), "done"])

    def fn() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert call_with_retries(fn, RetryPolicy(base_delay=0.1), sleep=slept.append) == "done"
    assert slept[0] == 2.0 and 0.15 <= slept[1] <= 0.25  # second retry: base * 2, +-25%

    def always() -> None:
        raise RetryableError("down")

    with pytest.raises(LLMError, match="gave up after 3 attempts"):
        call_with_retries(always, RetryPolicy(max_retries=2, base_delay=0.0), sleep=slept.append)


def test_error_for_status() -> None:
    kw = {"provider": "openai", "env_var": "OPENAI_API_KEY", "secrets": ["not-a-real-secret-1234567890abcdef"]}
    auth = error_for_status(401, {}, "Incorrect API key provided: not-a-real-secret-1234567890abcdef", **kw)
    assert isinstance(auth, LLMAuthError) and "OPENAI_API_KEY" in str(auth) and "not-a-real-secret" not in str(auth)
    limited = error_for_status(429, {"retry-after": "4"}, "slow down", **kw)
    assert isinstance(limited, RetryableError) and limited.retry_after == 4.0
    assert isinstance(error_for_status(503, {}, "", **kw), RetryableError)
    bad = error_for_status(404, {}, "model not-a-real-secret-1234567890abcdef not found", **kw)
    assert isinstance(bad, LLMRequestError) and "model" in str(bad) and "1234567890" not in str(bad)


def test_redact_removes_whole_and_partial_keys() -> None:
    key = "fake-proj-ABCDEFGHIJKLMNOPQRSTUVWX"
    text = f"key {key} or masked fake-proj-ABCD****STUVWX or tail {key[-10:]}"
    out = redact(text, [key])
    assert key not in out and key[-10:] not in out and "***" in out


def test_cache_round_trip_and_damaged_entries(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path)
    fields = {"provider": "openai", "model": "m", "messages": [["user", "hi"]], "temperature": 0.7}
    key = cache_key(fields)
    assert key == cache_key(dict(reversed(list(fields.items()))))  # order does not matter
    assert cache.get(key) is None
    cache.put(key, fields, {"text": "- red", "usage": {"input_tokens": 3}})
    assert cache.get(key)["reply"]["text"] == "- red"
    assert json.loads(cache.path(key).read_text())["request"] == fields
    cache.path(key).write_text("{broken")
    assert cache.get(key) is None  # asked again rather than crashing
    assert ReplyCache(tmp_path, enabled=False).get(key) is None
