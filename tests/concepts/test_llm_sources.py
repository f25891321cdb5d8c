"""The openai and anthropic plugins, through their real SDKs, against the local test server."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import pytest

from ceir_sdk.concepts import ConceptSet, LLMAuthError, LLMError, RetryPolicy, generate_concepts
from ceir_sdk.worlds import World

PROVIDERS = ["openai", "anthropic"]
FAST = RetryPolicy(max_retries=3, base_delay=0.02)


def _gen(adapter: Any, classes: list[str], cache: Path, **kw: Any) -> ConceptSet:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 5.0)
    return generate_concepts(adapter, classes, cache_dir=cache, progress=False, **kw)


def _oracle_union(classes: list[str]) -> set[str]:
    oracle = World("world10").oracle
    return {c for name in classes for kind in oracle.class_concepts(name).values() for c in kind}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_generates_world_concepts_and_caches_them(
    provider: str, llm_server: Any, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    adapter = make_adapter(provider, llm_server)
    classes = ["ladybug", "zebra"]
    cs = _gen(adapter, classes, tmp_path / "cache")
    assert set(cs.phrases) == _oracle_union(classes)
    assert llm_server.count() == 2 * 3 * 2  # classes x kinds x samples
    assert {r["api"] for r in llm_server.requests} == {provider}
    assert cs.source == f"{provider}:{adapter.model}" and cs.prompts_hash
    assert cs.generation["usage"]["input_tokens"] > 0 and cs.generation["usage"]["output_tokens"] > 0
    assert {o.kind for o in cs.origins_of("an insect")} == {"superclasses"}
    if provider == "openai":
        assert {r["temperature"] for r in llm_server.requests} == {0.7}
    # a rerun is free and identical
    again = _gen(adapter, classes, tmp_path / "cache")
    assert llm_server.count() == 12
    assert again.generation["from_cache"] == 12 and again.phrases == cs.phrases
    # a different temperature is a different request
    _gen(adapter, ["ladybug"], tmp_path / "cache", temperature=0.2, kinds=["features"], n_samples=1)
    assert llm_server.count() == 13


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_retry_after_is_honoured(
    provider: str, llm_server: Any, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    llm_server.script("429")
    start = time.monotonic()
    cs = _gen(make_adapter(provider, llm_server), ["bee"], tmp_path, kinds=["features"], n_samples=1)
    assert time.monotonic() - start >= 1.0  # the server said Retry-After: 1, backoff alone is 0.02 s
    assert cs.generation["retries"] == 1 and llm_server.count("429") == 1
    assert set(cs.phrases) == set(World("world10").oracle.class_concepts("bee")["features"])


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["500", "malformed", "slow"])
def test_transient_failures_are_retried(
    provider: str, mode: str, llm_server: Any, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    llm_server.script(mode, times=2)
    cs = _gen(make_adapter(provider, llm_server), ["bee"], tmp_path, kinds=["features"], n_samples=1,
              timeout=0.5)
    assert cs.generation["retries"] == 2
    assert llm_server.count(mode) == 2 and llm_server.count("ok") == 1
    assert len(cs) > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_persistent_failure_names_the_problem(
    provider: str, llm_server: Any, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    llm_server.script("slow", times=10)
    with pytest.raises(LLMError, match=r"no reply within 0.3 s.*gave up after 2 attempts"):
        _gen(make_adapter(provider, llm_server), ["bee"], tmp_path, kinds=["features"], n_samples=1,
             timeout=0.3, retry=RetryPolicy(max_retries=1, base_delay=0.01))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["refusal", "empty"])
def test_refusals_and_empty_replies_are_reported_not_fatal(
    provider: str, mode: str, llm_server: Any, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    llm_server.script(mode, when_class="zebra")
    cs = _gen(make_adapter(provider, llm_server), ["zebra", "bee"], tmp_path, kinds=["superclasses"],
              n_samples=1)
    (problem,) = cs.generation["no_concepts"]
    assert (problem["class"], problem["kind"], problem["sample"], problem["form"]) == (
        "zebra", "superclasses", 0, mode)
    assert problem["note"]  # says why: the refusal text, or that the reply was empty
    assert "an insect" in cs.phrases  # bee's answer still counts


@pytest.mark.parametrize("mode", ["prose", "json"])
def test_prose_and_json_replies_are_parsed(
    mode: str, llm_server: Any, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    llm_server.script(mode)
    cs = _gen(make_adapter("openai", llm_server), ["zebra"], tmp_path, kinds=["around"], n_samples=1)
    assert set(cs.phrases) == set(World("world10").oracle.class_concepts("zebra")["around"])
    assert cs.generation["reply_forms"] == {mode: 1}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_interrupted_run_keeps_every_reply_that_arrived(
    provider: str, llm_server: Any, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    classes = ["ladybug", "bee", "zebra", "pizza"]
    llm_server.script("500", times=50, when_class="pizza")  # pizza fails for good
    cache = tmp_path / "cache"
    with pytest.raises(LLMError, match=r"replies are in the cache .* rerun to continue"):
        _gen(make_adapter(provider, llm_server), classes, cache, max_in_flight=1,
             retry=RetryPolicy(max_retries=1, base_delay=0.01))
    saved = list(cache.rglob("*.json"))
    assert len(saved) == 3 * 3 * 2  # everything before pizza
    asked = llm_server.count()
    llm_server._script.clear()
    cs = _gen(make_adapter(provider, llm_server), classes, cache)
    assert llm_server.count() - asked == 3 * 2  # only pizza's six requests are asked again
    assert cs.generation["from_cache"] == 18 and set(cs.phrases) == _oracle_union(classes)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_in_flight_requests_are_bounded(
    provider: str, fake_keys: dict, make_adapter: Any, tmp_path: Path
) -> None:
    from llm_server import LLMTestServer

    with LLMTestServer(delay=0.15) as server:
        _gen(make_adapter(provider, server), ["ladybug", "bee", "zebra", "pizza"], tmp_path, max_in_flight=3,
             kinds=["features"])
        assert 2 <= server.max_in_flight <= 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rejected_fake_key_never_leaks(
    provider: str, fake_keys: dict, make_adapter: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from llm_server import LLMTestServer

    key = fake_keys[provider]
    caplog.set_level(logging.DEBUG)
    with LLMTestServer(require_key="the-right-key") as server:
        server.script("429")  # a retry first, so retry logging runs too
        with pytest.raises(LLMAuthError) as info:
            _gen(make_adapter(provider, server), ["bee"], tmp_path / "cache", kinds=["features"], n_samples=1)
    env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    message = str(info.value)
    assert env in message and "rejected" in message
    fragments = [key, key[-12:], key[:12]]
    for text in [message, repr(info.value), str(info.value.__cause__), str(info.value.__context__)]:
        assert not any(f in text for f in fragments)
    assert any("retry" in r.getMessage() for r in caplog.records)  # logging did run
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert not any(f in logged for f in fragments)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace")


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch, first_party_host: Any) -> None:
    from ceir_sdk import get_concept_source

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMAuthError, match="OPENAI_API_KEY"):
        get_concept_source("openai:gpt-4.1")
    with pytest.raises(LLMAuthError, match="ANTHROPIC_API_KEY"):
        get_concept_source("anthropic")


def test_openai_compatible_server_needs_no_key_unless_it_asks(
    monkeypatch: pytest.MonkeyPatch, first_party_host: Any, tmp_path: Path
) -> None:
    from llm_server import LLMTestServer

    from ceir_sdk import get_concept_source

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMTestServer() as server:
        source = get_concept_source("openai:llama-3", base_url=server.openai_base_url, cache_dir=tmp_path,
                                    n_samples=1)
        cs = source.generate(["bee"], progress=False)
        assert cs.source == "openai:llama-3" and len(cs) > 0
        assert {r["model"] for r in server.requests} == {"llama-3"}
    with LLMTestServer(require_key="needed") as server:
        source = get_concept_source("openai:llama-3", base_url=server.openai_base_url, cache_dir=tmp_path / "b",
                                    n_samples=1)
        with pytest.raises(LLMAuthError, match="OPENAI_API_KEY"):
            source.generate(["bee"], progress=False)


def test_default_models_are_known_to_the_installed_sdks() -> None:
    from anthropic.types import Model
    from ceir_anthropic.adapter import DEFAULT_MODEL as CLAUDE
    from ceir_openai.adapter import DEFAULT_MODEL as GPT
    from openai.types import ChatModel

    assert GPT in typing.get_args(ChatModel) and GPT.startswith("gpt-4")
    assert CLAUDE in typing.get_args(typing.get_args(Model)[0])


@pytest.mark.parametrize("module", ["ceir_openai.plugin", "ceir_anthropic.plugin", "ceir_static.plugin"])
def test_plugin_entry_points_import_no_vendor_sdk(module: str) -> None:
    code = (
        f"import sys, {module}; heavy = [m for m in ('openai', 'anthropic', 'torch', 'numpy') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_ctrl_c_keeps_the_replies_that_arrived(
    fake_keys: dict, make_adapter: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import _thread
    import signal
    import threading

    from llm_server import LLMTestServer

    # interrupt_main() does nothing unless Python handles SIGINT; a library imported by an earlier
    # test may have set it to SIG_IGN / SIG_DFL, which made this test flaky.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    classes = World("world10").class_names
    cache = tmp_path / "cache"
    with LLMTestServer(delay=0.2) as server:
        adapter = make_adapter("openai", server)

        def interrupt_after_three() -> None:
            while server.count() < 3:
                time.sleep(0.01)
            _thread.interrupt_main()  # Ctrl-C in the main thread, mid-run

        threading.Thread(target=interrupt_after_three, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            _gen(adapter, classes, cache, max_in_flight=2, kinds=["features"])
        answered = server.count()
        assert 0 < answered < 20
        assert len(list(cache.rglob("*.json"))) == answered  # in-flight replies landed too
        cs = _gen(adapter, classes, cache, max_in_flight=2, kinds=["features"])
        assert server.count() == 20 and cs.generation["from_cache"] == answered
