"""Apply a change to an index and save it, retrying while other writers save in between.

Saving refuses to write over a version another writer saved since this index was read
(:class:`~ceir_sdk.errors.ConflictError`, see :mod:`ceir_sdk.index.persist`). The way out is
to load again and apply the change again. Doing that at once and a fixed number of times is
not enough: two writers whose load-change-save cycles take about as long fall into step, and
the slower one loses every round (CI saw a server lose 8 in a row to a library writer). So the
retries back off, exponentially with full jitter, which breaks the step, and give up only
after a time budget rather than after a count.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ceir_sdk.errors import ConflictError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a change keeps trying before it gives up; the first and the largest pause.
WITHIN_S, FIRST_PAUSE_S, MAX_PAUSE_S = 30.0, 0.01, 0.5


def save_change(index: Any, path: str | Path, change: Callable[[Any], T], reload: Callable[[], Any], *,
                within_s: float = WITHIN_S, rng: random.Random | None = None) -> tuple[Any, T]:
    """``change(index)``, then ``index.save(path)``; on a conflict, pause, ``reload()`` and again.

    Returns the index that was saved (a reloaded one when there was a conflict) and what the
    last ``change`` returned. After ``within_s`` seconds of conflicts it raises ConflictError,
    and nothing of this change is on disk; the caller's in-memory index then holds the change
    without the disk having it, so reload before using it again. Other errors pass through.
    """
    rng = rng or random.Random()
    deadline = time.monotonic() + within_s
    attempts = 0
    while True:
        result = change(index)  # a refused change (BadInputError) leaves the index as it was
        try:
            index.save(path)
            return index, result
        except ConflictError:
            attempts += 1
            if time.monotonic() >= deadline:
                tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
                raise ConflictError(
                    f"the index at {path} kept changing under other writers for {within_s:g} s ({tries} to save); "
                    "nothing of this change was written. Try again, or have fewer processes write to one index at once"
                ) from None
            pause = rng.uniform(0, min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** attempts))
            log.info("index %s was saved by another writer; reloading and applying the change again in %.0f ms",
                     path, pause * 1000)
            time.sleep(pause)
            index = reload()
