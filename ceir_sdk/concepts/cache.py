"""Disk cache of LLM replies: one JSON file per request, written atomically as it arrives.

The key is the SHA-256 of provider, endpoint, model, prompt and parameters; API keys are
never part of it, so a cache can be shared and committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ceir_sdk.atomic import atomic_write_json

log = logging.getLogger("ceir_sdk.concepts")

CACHE_FORMAT = "ceir-llm-reply"


def default_cache_dir() -> Path:
    env = os.environ.get("CEIR_CACHE_DIR")
    if env:
        return Path(env) / "llm"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "ceir" / "llm"


def cache_key(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _valid_reply(reply: Any) -> bool:
    """The shape generate writes: text (str or None), refusal, usage (str -> int), model."""
    if not isinstance(reply, dict):
        return False
    if not isinstance(reply.get("text"), (str, type(None))) or not isinstance(reply.get("model"), (str, type(None))):
        return False
    usage = reply.get("usage")
    return usage is None or (isinstance(usage, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in usage.values()))


class ReplyCache:
    def __init__(self, directory: str | Path | None = None, *, enabled: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.enabled = enabled

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        path = self.path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # JSON or UTF-8 damage
            log.warning("ignoring a damaged reply cache entry %s; asking again", path)
            return None  # a damaged entry is simply asked again (and then overwritten)
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not _valid_reply(data.get("reply")):
            log.warning("ignoring a reply cache entry of an unexpected shape %s; asking again", path)
            return None
        return data

    def put(self, key: str, fields: dict[str, Any], reply: dict[str, Any]) -> None:
        if not self.enabled:
            return
        atomic_write_json(self.path(key), {"format": CACHE_FORMAT, "request": fields, "reply": reply})
