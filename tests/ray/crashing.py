"""An embedder factory that kills its Ray worker process once, mid-run (a marker file makes it once)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ceir_ray.embedders import EmbedFn, OnnxEmbedder


@dataclass(frozen=True)
class CrashOnceEmbedder:
    inner: OnnxEmbedder
    marker: str
    crash_on_call: int = 3  # the actor's third batch: some rows are out, some are in flight

    def __call__(self) -> EmbedFn:
        embed = self.inner()
        calls = [0]
        marker = Path(self.marker)

        def crashing(images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
            calls[0] += 1
            if calls[0] == self.crash_on_call and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)  # the worker process dies without cleanup, as on an OOM kill
            return embed(images)

        return crashing
