"""Generate a raw concept set with an LLM: three prompt kinds x N samples per class.

Requests run in a thread pool bounded by ``max_in_flight``; each reply is written to the
disk cache the moment it arrives, so an interrupted or failed run loses nothing and a
rerun asks only for what is missing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ceir_sdk.concepts.cache import ReplyCache, cache_key
from ceir_sdk.concepts.conceptset import KINDS, Concept, ConceptOrigin, ConceptSet
from ceir_sdk.concepts.llm import (
    ChatReply,
    ChatRequest,
    ClientAdapter,
    LLMAuthError,
    LLMError,
    LLMRequestError,
    RetryableError,
    RetryPolicy,
    call_with_retries,
    redact,
)
from ceir_sdk.concepts.parsing import parse_reply
from ceir_sdk.concepts.prompts import Prompts, load_prompts
from ceir_sdk.errors import BadInputError

log = logging.getLogger("ceir_sdk.concepts")


@dataclass(frozen=True)
class _Job:
    class_name: str
    kind: str
    request: ChatRequest
    key: str
    fields: dict[str, Any]


def _public_endpoint(endpoint: str | None) -> str | None:
    """The base URL without any user:password part (never store credentials)."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _reply_record(reply: ChatReply) -> dict[str, Any]:
    return {"text": reply.text, "refusal": reply.refusal, "usage": reply.usage, "model": reply.model}


def generate_concepts(
    client_adapter: ClientAdapter,
    class_names: Sequence[str],
    n_samples: int = 2,
    temperature: float = 0.7,
    max_in_flight: int = 8,
    cache_dir: str | Path | None = None,
    *,
    prompts: Prompts | str | Path | None = None,
    kinds: Sequence[str] | None = None,
    max_tokens: int = 400,
    timeout: float = 60.0,
    retry: RetryPolicy | None = None,
    use_cache: bool = True,
    progress: bool = True,
    domain: str | None = None,
    retry_empty: bool = False,
) -> ConceptSet:
    """Ask the model for concepts of every class; returns the raw (unprocessed) set."""
    names = [str(n).strip() for n in class_names]
    if not names or any(not n for n in names):
        raise BadInputError("class_names must be a non-empty list of non-empty names")
    if n_samples < 1:
        raise BadInputError(f"n_samples must be >= 1, got {n_samples}")
    if max_in_flight < 1:
        raise BadInputError(f"max_in_flight must be >= 1, got {max_in_flight}")
    prompt_set = prompts if isinstance(prompts, Prompts) else load_prompts(prompts)
    wanted = list(kinds) if kinds is not None else [k for k in KINDS if k in prompt_set.kinds]
    unknown = [k for k in wanted if k not in prompt_set.kinds]
    if unknown:
        raise BadInputError(f"prompt kinds {unknown} are not in the prompts file; it has {list(prompt_set.kinds)}")
    policy = retry or RetryPolicy()
    cache = ReplyCache(cache_dir, enabled=use_cache)
    secrets = client_adapter.secrets()
    endpoint = _public_endpoint(client_adapter.endpoint)

    jobs: list[_Job] = []
    for name in dict.fromkeys(names):
        for kind in wanted:
            turns = tuple((m["role"], m["content"]) for m in prompt_set.messages(kind, name))
            for sample in range(n_samples):
                request = ChatRequest(prompt_set.system, turns, temperature, max_tokens, sample)
                fields = {
                    "provider": client_adapter.provider,
                    "endpoint": endpoint,
                    "model": client_adapter.model,
                    **request.as_key_fields(),
                }
                jobs.append(_Job(name, kind, request, cache_key(fields), fields))

    replies: dict[str, dict[str, Any]] = {}
    for job in jobs:
        hit = cache.get(job.key)
        # retry_empty: a cached refusal or empty reply is asked again (the rest stay cached).
        if hit is not None and not (retry_empty and not _reply_concepts(hit["reply"])[0]):
            replies[job.key] = hit["reply"]
    from_cache = len(replies)
    todo = [job for job in jobs if job.key not in replies]
    lock = threading.Lock()
    stats = {"retries": 0}

    def on_retry(attempt: int, exc: RetryableError, wait_s: float) -> None:
        with lock:
            stats["retries"] += 1
        log.warning("%s:%s %s; retry %d in %.1f s", client_adapter.provider, client_adapter.model,
                    redact(str(exc), secrets), attempt + 1, wait_s)

    # Set when one request has failed for good or the user pressed Ctrl-C: no worker starts a
    # new request or sits out a retry wait after that.
    stop = threading.Event()

    def wait_or_stop(seconds: float) -> None:
        if stop.wait(seconds):
            raise _Stopped

    def run(job: _Job) -> None:
        if stop.is_set():
            raise _Stopped
        try:
            reply = call_with_retries(
                lambda: client_adapter.complete(job.request, timeout=timeout), policy, on_retry=on_retry,
                sleep=wait_or_stop,
            )
        except _Stopped:
            raise
        except BaseException:
            stop.set()
            raise
        record = _reply_record(reply)
        cache.put(job.key, job.fields, record)  # saved as soon as it arrives
        with lock:
            replies[job.key] = record

    if todo:
        _run_all(todo, run, max_in_flight, progress, len(jobs), from_cache, cache, secrets,
                 f"{client_adapter.provider}:{client_adapter.model}", stop)

    return _assemble(client_adapter, jobs, replies, prompt_set, names, from_cache, stats["retries"],
                     n_samples=n_samples, temperature=temperature, max_tokens=max_tokens,
                     kinds=wanted, endpoint=endpoint, domain=domain)


class _Stopped(Exception):
    """A request not started, or a retry wait cut short, because the run is stopping."""


def _run_all(
    todo: list[_Job],
    run: Any,
    max_in_flight: int,
    progress: bool,
    total: int,
    from_cache: int,
    cache: ReplyCache,
    secrets: list[str],
    label: str,
    stop: threading.Event,
) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=from_cache, desc=f"concepts from {label}", unit="reply",
               disable=not progress)
    pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="ceir-llm")
    failure: BaseException | None = None
    try:
        futures: list[Future[None]] = [pool.submit(run, job) for job in todo]
        pending = set(futures)
        while pending:
            # A short timeout keeps the main thread responsive to Ctrl-C.
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is None:
                    bar.update(1)
                elif failure is None and not isinstance(future.exception(), _Stopped):
                    failure = future.exception()
            if failure is not None:
                break
    except KeyboardInterrupt:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)  # requests in flight finish and land in the cache
        saved = sum(1 for job in todo if cache.get(job.key) is not None) + from_cache
        if cache.enabled:
            log.warning("interrupted: %d of %d replies are in the cache at %s; rerun to ask only for the rest",
                        saved, total, cache.directory)
        raise
    finally:
        # Stop queued requests and retry waits; those in flight finish and land in the cache.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    if failure is not None:
        saved = sum(1 for job in todo if cache.get(job.key) is not None) + from_cache
        # A rejected key or request fails the same way on a rerun; a give-up after retries may not.
        again = "fix that, then rerun" if isinstance(failure, (LLMAuthError, LLMRequestError)) else "rerun to continue"
        where = f"; {saved} of {total} replies are in the cache at {cache.directory}, {again}" \
            if cache.enabled else ""
        if not isinstance(failure, Exception):
            raise failure  # KeyboardInterrupt / SystemExit from a worker: stop as asked
        message = redact(f"{failure}{where}", secrets)
        if isinstance(failure, LLMError):
            raise type(failure)(message) from None
        raise LLMError(f"{type(failure).__name__}: {message}") from None


def _reply_concepts(record: dict[str, Any]) -> tuple[list[str], str, str]:
    """(concepts, reply form, note) of one reply record."""
    if record.get("refusal"):
        return [], "refusal", str(record["refusal"])[:200]
    parsed = parse_reply(record.get("text"))
    return parsed.concepts, parsed.form, parsed.note


def _assemble(
    adapter: ClientAdapter,
    jobs: list[_Job],
    replies: dict[str, dict[str, Any]],
    prompts: Prompts,
    names: list[str],
    from_cache: int,
    retries: int,
    **settings: Any,
) -> ConceptSet:
    concepts: dict[str, Concept] = {}
    forms: dict[str, int] = {}
    problems: list[dict[str, Any]] = []
    usage = {"input_tokens": 0, "output_tokens": 0}
    usage_reported = 0
    models: set[str] = set()
    for job in jobs:
        record = replies[job.key]
        if record.get("model"):
            models.add(str(record["model"]))
        if record.get("usage"):
            usage_reported += 1
            for k in usage:
                usage[k] += int(record["usage"].get(k, 0))
        parsed_concepts, form, note = _reply_concepts(record)
        forms[form] = forms.get(form, 0) + 1
        if not parsed_concepts:
            problems.append({"class": job.class_name, "kind": job.kind, "sample": job.request.sample,
                             "form": form, "note": note})
        for phrase in parsed_concepts:
            origin = ConceptOrigin(job.kind, job.class_name, job.request.sample)
            concepts.setdefault(phrase, Concept(phrase)).origins.append(origin)
    generation = {
        **settings,
        "prompts": prompts.name,
        "requests": len(jobs),
        "from_cache": from_cache,
        "new_requests": len(jobs) - from_cache,
        "retries": retries,
        "reply_forms": dict(sorted(forms.items())),
        "no_concepts": problems,
        "usage": usage if usage_reported else None,
        "usage_note": f"token usage reported for {usage_reported} of {len(jobs)} replies (cached ones included)",
        "models_answering": sorted(models),
        "provider_notes": list(getattr(adapter, "notes", [])),
    }
    return ConceptSet(
        concepts=list(concepts.values()),
        source=f"{adapter.provider}:{adapter.model}",
        class_names=names,
        model=adapter.model,
        prompts_hash=prompts.hash,
        generation=generation,
    )
