"""``ConceptSourceBase``: what every concept source needs besides its knowledge, written once.

A plugin author subclasses it and answers for one class at a time::

    class MySource(ConceptSourceBase):
        name = "my-source"

        def concepts_for(self, class_name, *, domain=None):
            return ["four legs", "a tail"]            # or {"features": [...], "around": [...]}

and gets :meth:`generate` (the :class:`ceir_sdk.contracts.ConceptSource` contract) from the base:
phrases cleaned and merged across classes with their origins (which class, which kind), retries
with backoff of :class:`ceir_sdk.concepts.RetryableError` (raise it for a rate limit or a timeout),
an optional on-disk cache of each class's answer (the LLM sources' reply cache, keyed by the source,
the class, the domain and :meth:`cache_fields`), a progress bar, and the provenance in the returned
:class:`ceir_sdk.concepts.ConceptSet` (source, model, class names, generation settings, cache hits).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ceir_sdk.errors import BadInputError, PluginError

if TYPE_CHECKING:  # ceir_sdk.concepts is imported when used: `import ceir_sdk` stays cheap
    from ceir_sdk.concepts.conceptset import Concept, ConceptOrigin, ConceptSet

log = logging.getLogger("ceir_sdk.concepts")

#: the origin kind of phrases a source returns as a plain list
DEFAULT_KIND = "features"
#: the keyword options ConceptSourceBase.__init__ takes (declare them with your own when you register)
BASE_OPTIONS = ("cache_dir", "use_cache", "max_retries")


def merge_phrases(items: Iterable[tuple[str, ConceptOrigin]]) -> list[Concept]:
    """Phrases (stripped, empty ones dropped) in first-seen order, each once with all its origins."""
    from ceir_sdk.concepts.conceptset import Concept

    concepts: dict[str, Concept] = {}
    for phrase, origin in items:
        if not isinstance(phrase, str):
            raise BadInputError(f"concepts must be strings, got {type(phrase).__name__}: {phrase!r}")
        text = phrase.strip()
        if text:
            concepts.setdefault(text, Concept(text)).origins.append(origin)
    return list(concepts.values())


def _by_kind(answer: Any, where: str) -> dict[str, list[str]]:
    """A list of phrases (kind DEFAULT_KIND) or a mapping kind -> phrases, checked."""
    if isinstance(answer, str) or answer is None:
        raise PluginError(f"{where} must return a list of phrases or a mapping {{kind: [phrases]}}; "
                          f"got {type(answer).__name__}")
    pairs = answer.items() if isinstance(answer, Mapping) else [(DEFAULT_KIND, answer)]
    out: dict[str, list[str]] = {}
    for kind, phrases in pairs:
        if isinstance(phrases, str) or not isinstance(phrases, Iterable):
            raise PluginError(f"{where}: the phrases of kind {kind!r} must be a list of strings")
        out[str(kind)] = list(phrases)
    return out


class ConceptSourceBase:
    """Base class of a concept source (see the module docstring and docs/plugins.md).

    Subclasses set ``name`` (and ``model`` when a model writes the phrases) and implement
    ``concepts_for``; ``cache_fields`` and ``generation_settings`` are optional.
    """

    name: str = ""
    #: what wrote the phrases (an LLM's name), recorded in the ConceptSet; None for files and lists
    model: str | None = None
    #: whether answers are cached on disk by default (use_cache=None): worth it when concepts_for
    #: calls a service; a local file needs no cache
    cache_by_default: bool = False

    def __init__(self, *, cache_dir: str | Path | None = None, use_cache: bool | None = None,
                 max_retries: int = 3) -> None:
        from ceir_sdk.concepts.llm import RetryPolicy

        if max_retries < 0:
            raise BadInputError(f"max_retries must be at least 0; got {max_retries}")
        self.retry_policy = RetryPolicy(max_retries=int(max_retries))
        self.cache_dir = cache_dir
        self.use_cache = self.cache_by_default if use_cache is None else bool(use_cache)

    # -- what the author writes ----------------------------------------------------------------
    def concepts_for(
        self, class_name: str, *, domain: str | None = None
    ) -> Sequence[str] | Mapping[str, Sequence[str]]:
        """The concept phrases of one class: a list, or a mapping kind -> list (kinds such as
        "features", "superclasses", "around" are kept as each phrase's origin). Raise
        :class:`ceir_sdk.concepts.RetryableError` for a failure worth retrying."""
        raise NotImplementedError(f"{type(self).__name__} must implement concepts_for(class_name, *, domain)")

    def cache_fields(self) -> dict[str, Any]:
        """Everything besides the class and the domain that decides the answer (model, prompt,
        temperature, a file's checksum): part of the cache key."""
        return {"source": self.name, "model": self.model}

    def generation_settings(self) -> dict[str, Any]:
        """Settings recorded in the ConceptSet's ``generation`` provenance (JSON)."""
        return {}

    # -- what the base provides ----------------------------------------------------------------
    def _cache(self) -> Any:
        from ceir_sdk.concepts.cache import ReplyCache

        return ReplyCache(self.cache_dir, enabled=self.use_cache)

    def _answer(self, class_name: str, domain: str | None, cache: Any) -> tuple[dict[str, list[str]], bool]:
        """(phrases by kind, whether they came from the cache) for one class."""
        from ceir_sdk.concepts.cache import cache_key
        from ceir_sdk.concepts.llm import RetryableError, call_with_retries

        where = f"concept source {self.name!r}: concepts_for({class_name!r})"
        fields = {"kind": "concept-source-answer", **self.cache_fields(), "class": class_name, "domain": domain}
        key = cache_key(fields)
        hit = cache.get(key)
        if hit is not None:
            try:
                return _by_kind(json.loads(hit["reply"]["text"]), where), True
            except (ValueError, TypeError, PluginError):
                log.warning("ignoring a damaged cache entry %s; asking again", cache.path(key))

        def retrying(attempt: int, exc: RetryableError, wait: float) -> None:
            log.warning("%s: %s; retry %d of %d in %.1f s", self.name, exc, attempt + 1,
                        self.retry_policy.max_retries, wait)

        answer = _by_kind(call_with_retries(lambda: self.concepts_for(class_name, domain=domain),
                                            self.retry_policy, on_retry=retrying), where)
        cache.put(key, fields, {"text": json.dumps(answer, ensure_ascii=False), "model": self.model, "usage": {}})
        return answer, False

    def generate(
        self, class_names: Sequence[str], *, domain: str | None = None, progress: bool = True
    ) -> ConceptSet:
        """Ask :meth:`concepts_for` for each class (cached, retried) and return one ConceptSet."""
        from tqdm.auto import tqdm

        from ceir_sdk.concepts.conceptset import ConceptOrigin, ConceptSet

        if isinstance(class_names, str):
            raise BadInputError("generate takes a list of class names; wrap a single name as [name]")
        names = [str(n) for n in class_names]
        if not names:
            raise BadInputError(f"concept source {self.name!r} answers per class: give at least one class name")
        cache = self._cache()
        items: list[tuple[str, ConceptOrigin]] = []
        n_cached = 0
        for class_name in tqdm(names, desc=f"concepts ({self.name})", unit="class", disable=not progress,
                               leave=False):
            answer, cached = self._answer(class_name, domain, cache)
            n_cached += cached
            for kind, phrases in answer.items():
                items += [(p, ConceptOrigin(kind, class_name)) for p in phrases]
        concepts = merge_phrases(items)
        if not concepts:
            raise PluginError(f"concept source {self.name!r} returned no concepts for {names[:5]}")
        generation = {**self.generation_settings(), "n_classes": len(names), "n_cached": n_cached}
        if domain:
            generation["domain"] = domain
        return ConceptSet(concepts, source=self.name, class_names=names, model=self.model, generation=generation)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
