"""Keeping the CLI from saying a thing twice."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def reported_here(*logger_names: str) -> Iterator[None]:
    """Hold back these loggers' warnings while a command reports the same thing itself
    (the skip summary of unreadable images); errors still get through."""
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)
