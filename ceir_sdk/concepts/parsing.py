"""Parse what language models really reply: bullets, numbering, JSON, prose, refusals, nothing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.S)
# A list marker at the start of a line: -, *, •, –, 1., 1), (1), a), [ ] ...
_MARKER = re.compile(r"^\s*(?:[-•·–—+>]+|\*\s|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)]\s|\[\s?\])\s*")
_REFUSAL = re.compile(
    r"^\s*(?:i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i cannot|i won'?t|i am unable|i'?m unable|"
    r"as an ai|unfortunately,? i)",
    re.I,
)
# A line that introduces a list ("Here are the features of a bee:") rather than being a concept.
_PREAMBLE = re.compile(r"^(?:here (?:are|is)|sure|certainly|of course|the (?:most )?\w+ .*:$)|:\s*$", re.I)
_PROSE_SPLIT = re.compile(r",\s*(?:and\s+|or\s+)?|;\s*|\s+and\s+(?=[^,]*$)")
_MAX_PHRASE_WORDS = 12


@dataclass
class ParsedReply:
    concepts: list[str] = field(default_factory=list)
    form: str = "empty"  # bullets | json | prose | refusal | empty
    note: str = ""


def _from_json(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            got = _from_json(item)
            if got is None:
                return None
            out.extend(got)
        return out
    if isinstance(value, dict):
        # {"concepts": [...]} or {"features": [...], ...}: every list/str value counts
        out = []
        for item in value.values():
            got = _from_json(item)
            if got is not None:
                out.extend(got)
        return out
    return None


def _clean(item: str) -> str:
    item = _MARKER.sub("", item, count=1).strip()
    item = item.replace("**", "").replace("__", "")  # markdown bold inside a phrase
    item = item.strip(" \t\"'`*_")  # quotes and markdown emphasis around a phrase
    return item.rstrip(".;,").strip()


def parse_reply(text: str | None) -> ParsedReply:
    """Concept phrases in a model reply, with the form it took and a note when none came out."""
    if text is None or not text.strip():
        return ParsedReply(form="empty", note="the model returned no text")
    body = text.strip()
    fence = _FENCE.match(body)
    if fence:
        body = fence.group(1).strip()
    if body[:1] in "[{":
        try:
            parsed = _from_json(json.loads(body))
        except json.JSONDecodeError:
            parsed = None
        if parsed is not None:
            items = [_clean(p) for p in parsed]
            return ParsedReply([p for p in items if p], form="json")
    if _REFUSAL.match(body):
        return ParsedReply(form="refusal", note=body.splitlines()[0][:200])

    lines = [line for line in body.splitlines() if line.strip()]
    marked = [line for line in lines if _MARKER.match(line)]
    if marked and len(marked) >= max(1, len(lines) // 2):
        return ParsedReply([c for c in (_clean(line) for line in marked) if c], form="bullets")
    if len(lines) > 1 and all(len(line.split()) <= _MAX_PHRASE_WORDS for line in lines):
        # one bare phrase per line, perhaps under a preamble
        items = [_clean(line) for line in lines if not _PREAMBLE.search(line.strip())]
        return ParsedReply([c for c in items if c], form="bullets")

    # Prose: take what follows a colon if there is one, split on commas/semicolons/"and".
    tail = body.split(":", 1)[1] if ":" in body else body
    tail = tail.replace("\n", ", ").strip().rstrip(".")
    items = [_clean(p) for p in _PROSE_SPLIT.split(tail)]
    items = [p for p in items if p and len(p.split()) <= _MAX_PHRASE_WORDS]
    if not items:
        return ParsedReply(form="prose", note="no list could be read from the reply")
    return ParsedReply(items, form="prose")
