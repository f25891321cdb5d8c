"""A run that must stop (Ctrl-C, or one request failing for good) stops at once, not after
every queued request has spent its retries; and what a run leaves behind is robust."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from ceir_sdk.concepts.generate import generate_concepts
from ceir_sdk.concepts.llm import LLMError, RetryPolicy
from ceir_sdk.worlds import World


def test_ctrl_c_during_a_retry_after_wait_stops_at_once(
    fake_keys: dict, make_adapter: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import _thread
    import signal
    import threading

    from llm_server import LLMTestServer

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    with LLMTestServer(retry_after="20", default_mode="429") as server:
        adapter = make_adapter("openai", server)

        def interrupt_when_all_wait() -> None:
            while server.count() < 2:
                time.sleep(0.01)
            time.sleep(0.3)
            _thread.interrupt_main()

        threading.Thread(target=interrupt_when_all_wait, daemon=True).start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            generate_concepts(adapter, ["zebra", "bee"], cache_dir=tmp_path / "cache", progress=False,
                              max_in_flight=2, kinds=["features"], retry=RetryPolicy(max_retries=5), timeout=5.0)
        elapsed = time.perf_counter() - start
        asked = server.count()
        time.sleep(0.5)
        assert elapsed < 5.0, f"took {elapsed:.1f} s to stop; the Retry-After wait was 20 s"
        assert server.count() == asked  # nothing sent after the interrupt


def test_a_request_that_fails_for_good_stops_the_others(fake_keys: dict, make_adapter: Any, tmp_path: Path) -> None:
    from llm_server import LLMTestServer

    classes = World("world10").class_names[:4]
    with LLMTestServer(default_mode="500") as server:
        adapter = make_adapter("openai", server)
        with pytest.raises(LLMError, match="rerun to continue"):
            generate_concepts(adapter, classes, cache_dir=tmp_path / "cache", progress=False, max_in_flight=2,
                              kinds=["features"], retry=RetryPolicy(max_retries=2, base_delay=0.05), timeout=5.0)
        # The first job's 3 attempts, plus at most the other in-flight job's; no queued job starts.
        assert server.count() <= 6


@pytest.mark.parametrize("damage", [b"\xff\xfe not utf-8", b'{"format": "ceir-llm-reply", "reply": "oops"}',
                                    b'{"format": "ceir-llm-reply", "reply": {"text": 42}}'])
def test_a_damaged_cache_entry_is_asked_again(fake_keys: dict, make_adapter: Any, tmp_path: Path, damage: bytes,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from llm_server import LLMTestServer

    cache = tmp_path / "cache"
    with LLMTestServer() as server:
        adapter = make_adapter("openai", server)
        kwargs: dict[str, Any] = {"cache_dir": cache, "progress": False, "kinds": ["features"], "n_samples": 1}
        first = generate_concepts(adapter, ["zebra"], **kwargs)
        entry = next(cache.rglob("*.json"))
        entry.write_bytes(damage)
        with caplog.at_level(logging.WARNING, logger="ceir_sdk.concepts"):
            again = generate_concepts(adapter, ["zebra"], **kwargs)
        assert again.phrases == first.phrases and server.count() == 2
        assert str(entry) in caplog.text
        assert json.loads(entry.read_text())["reply"]["text"]  # rewritten whole


def test_credentials_in_a_base_url_stay_out_of_messages(fake_keys: dict, tmp_path: Path) -> None:
    from ceir_openai.adapter import OpenAIAdapter

    adapter = OpenAIAdapter(base_url="http://bob:hunter2hunter2@127.0.0.1:9/v1?api-key=AZSECRET99")
    with pytest.raises(LLMError) as err:
        generate_concepts(adapter, ["zebra"], cache_dir=tmp_path / "cache", progress=False, kinds=["features"],
                          n_samples=1, retry=RetryPolicy(max_retries=0), timeout=2.0)
    assert "hunter2hunter2" not in str(err.value) and "AZSECRET99" not in str(err.value)


def test_the_providers_key_going_to_another_server_is_said(fake_keys: dict,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from ceir_openai.adapter import OpenAIAdapter

    with caplog.at_level(logging.WARNING, logger="ceir_sdk.concepts"):
        OpenAIAdapter(base_url="http://llm.example.internal:8000/v1")
    assert "sending the key in OPENAI_API_KEY to http://llm.example.internal:8000 over plain http" in caplog.text
    assert fake_keys["openai"] not in caplog.text


def test_retry_empty_asks_again_only_for_replies_that_gave_no_concepts(
        fake_keys: dict, make_adapter: Any, tmp_path: Path) -> None:
    from llm_server import LLMTestServer

    kwargs: dict[str, Any] = {"cache_dir": tmp_path / "cache", "progress": False, "kinds": ["features"],
                              "n_samples": 2, "max_in_flight": 1}
    with LLMTestServer() as server:
        adapter = make_adapter("openai", server)
        server.script("refusal", times=1)
        first = generate_concepts(adapter, ["zebra", "bee"], **kwargs)
        assert len(first.generation["no_concepts"]) == 1 and server.count() == 4
        cached = generate_concepts(adapter, ["zebra", "bee"], **kwargs)
        assert len(cached.generation["no_concepts"]) == 1 and server.count() == 4  # refusals are cached
        again = generate_concepts(adapter, ["zebra", "bee"], retry_empty=True, **kwargs)
        assert again.generation["no_concepts"] == [] and server.count() == 5  # only the refusal re-asked
        assert again.generation["from_cache"] == 3
