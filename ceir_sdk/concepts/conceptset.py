"""ConceptSet: concept phrases plus where each came from and what was done to the set.

Saved as JSON (``format: ceir-concepts``); loading never executes code.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ceir_sdk.atomic import atomic_write_json
from ceir_sdk.errors import BadInputError, IncompatibleFileError

FORMAT = "ceir-concepts"
FORMAT_VERSION = 1

#: The prompt kinds of METHOD.md, plus the origins that do not come from a prompt.
KINDS = ("features", "superclasses", "around")


@dataclass(frozen=True)
class ConceptOrigin:
    """One way a phrase entered the set: which prompt kind, for which class, which sample."""

    kind: str  # features | superclasses | around | class_name | file | list | ...
    class_name: str | None = None
    sample: int | None = None
    raw: str | None = None  # the phrase as the source wrote it, before normalisation

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.class_name is not None:
            out["class"] = self.class_name
        if self.sample is not None:
            out["sample"] = self.sample
        if self.raw is not None:
            out["raw"] = self.raw
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConceptOrigin:
        return cls(
            kind=str(data["kind"]),
            class_name=data.get("class"),
            sample=data.get("sample"),
            raw=data.get("raw"),
        )


@dataclass
class Concept:
    phrase: str
    origins: list[ConceptOrigin] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The phrase (an alias for code that reads ``.text``)."""
        return self.phrase

    def __str__(self) -> str:
        return self.phrase

    def to_dict(self) -> dict[str, Any]:
        return {"phrase": self.phrase, "origins": [o.to_dict() for o in self.origins]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Concept:
        return cls(str(data["phrase"]), [ConceptOrigin.from_dict(o) for o in data.get("origins", [])])


@dataclass
class FilterStep:
    """What one processing step did: counts, parameters, and every removal with its reason."""

    name: str
    params: dict[str, Any]
    before: int
    after: int
    removed: list[dict[str, Any]] = field(default_factory=list)  # {"concept", "reason", ...}
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "before": self.before,
            "after": self.after,
            "removed": self.removed,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilterStep:
        return cls(
            name=str(data["name"]),
            params=dict(data.get("params", {})),
            before=int(data["before"]),
            after=int(data["after"]),
            removed=list(data.get("removed", [])),
            notes=list(data.get("notes", [])),
        )


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class ConceptSet:
    """An ordered set of concept phrases with provenance.

    ``source`` is the concept source name (``openai:gpt-4.1``, ``static:world10``...),
    ``model`` the LLM that wrote the phrases (None for files), ``prompts_hash`` the
    SHA-256 of the prompts used, ``filters`` the processing steps applied, in order.
    """

    concepts: list[Concept]
    source: str
    class_names: list[str] = field(default_factory=list)
    model: str | None = None
    prompts_hash: str | None = None
    created: str = field(default_factory=_now)
    filters: list[FilterStep] = field(default_factory=list)
    generation: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for concept in self.concepts:
            if concept.phrase in seen:
                raise BadInputError(
                    f"concept {concept.phrase!r} appears twice in the set; merge the origins of "
                    "duplicates (process_concepts does) before building a ConceptSet"
                )
            seen.add(concept.phrase)

    # -- reading -------------------------------------------------------------
    @property
    def phrases(self) -> list[str]:
        return [c.phrase for c in self.concepts]

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.phrases)

    def __contains__(self, phrase: object) -> bool:
        return any(c.phrase == phrase for c in self.concepts)

    def origins_of(self, phrase: str) -> list[ConceptOrigin]:
        for concept in self.concepts:
            if concept.phrase == phrase:
                return list(concept.origins)
        raise KeyError(phrase)

    def counts_by_kind(self) -> dict[str, int]:
        """How many concepts have at least one origin of each kind."""
        counts: dict[str, int] = {}
        for concept in self.concepts:
            for kind in {o.kind for o in concept.origins}:
                counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))

    # -- building ------------------------------------------------------------
    @classmethod
    def from_phrases(
        cls,
        phrases: Iterable[str],
        *,
        source: str = "list",
        kind: str = "list",
        class_names: Sequence[str] = (),
    ) -> ConceptSet:
        """A set from plain phrases; exact repeats are merged, order kept."""
        concepts: dict[str, Concept] = {}
        for phrase in phrases:
            if not isinstance(phrase, str):
                raise BadInputError(f"concepts must be strings, got {type(phrase).__name__}: {phrase!r}")
            text = phrase.strip()
            if not text:
                continue
            concepts.setdefault(text, Concept(text)).origins.append(ConceptOrigin(kind))
        return cls(list(concepts.values()), source=source, class_names=list(class_names))

    def replace(self, concepts: list[Concept], step: FilterStep | None = None) -> ConceptSet:
        """A copy with other concepts and, optionally, one more processing step recorded."""
        filters = [*self.filters, step] if step is not None else list(self.filters)
        return ConceptSet(
            concepts=concepts,
            source=self.source,
            class_names=list(self.class_names),
            model=self.model,
            prompts_hash=self.prompts_hash,
            created=self.created,
            filters=filters,
            generation=dict(self.generation),
        )

    # -- JSON ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from ceir_sdk._version import __version__

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ceir_sdk_version": __version__,
            "source": self.source,
            "model": self.model,
            "prompts_hash": self.prompts_hash,
            "created": self.created,
            "class_names": list(self.class_names),
            "generation": self.generation,
            "filters": [f.to_dict() for f in self.filters],
            "concepts": [c.to_dict() for c in self.concepts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "data") -> ConceptSet:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IncompatibleFileError(
                f"{where} is not a ceir concept set (expected \"format\": \"{FORMAT}\"); "
                "for a plain list of phrases use the static concept source (static:PATH)"
            )
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise IncompatibleFileError(
                f"{where} has concept-set format_version {version!r}; this ceir-sdk reads up to "
                f"{FORMAT_VERSION}: upgrade ceir-sdk"
            )
        try:
            return cls(
                concepts=[Concept.from_dict(c) for c in data["concepts"]],
                source=str(data["source"]),
                class_names=list(data.get("class_names", [])),
                model=data.get("model"),
                prompts_hash=data.get("prompts_hash"),
                created=str(data.get("created", "")),
                filters=[FilterStep.from_dict(f) for f in data.get("filters", [])],
                generation=dict(data.get("generation", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BadInputError):
                raise IncompatibleFileError(f"{where}: {exc}") from None
            raise IncompatibleFileError(f"{where} is a damaged concept set: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (an interrupted save keeps the previous file)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ConceptSet:
        path = Path(path)
        if not path.is_file():
            raise BadInputError(f"no concept set file at {path}; create one with `ceir concepts generate`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IncompatibleFileError(f"{path} is not valid JSON ({exc}); was it written by ceir?") from None
        return cls.from_dict(data, where=str(path))

    def __repr__(self) -> str:
        head = ", ".join(repr(p) for p in self.phrases[:5])
        more = f", ... ({len(self)} total)" if len(self) > 5 else ""
        return f"ConceptSet(source={self.source!r}, [{head}{more}])"
