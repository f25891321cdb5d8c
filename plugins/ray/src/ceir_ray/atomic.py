"""Durable file replacement: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ceir_sdk.atomic import replacing as atomic_replacing


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def replacing(path: Path) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path to write; on success fsync it and rename it over ``path``
    (ceir_sdk.atomic.replacing, with temporaries remove_stale_temps can find)."""
    return atomic_replacing(path, temp_name=temp_name)


def write_json(path: Path, data: Any) -> None:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def write_with(path: Path, writer: Callable[[Path], None]) -> None:
    with replacing(path) as tmp:
        writer(tmp)


def remove_stale_temps(folder: Path) -> int:
    """Delete temporaries an interrupted run left behind (they were never renamed into place)."""
    removed = 0
    for p in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            p.unlink()
            removed += 1
    return removed
