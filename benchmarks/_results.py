"""Where a benchmark writes its figures, and how.

Full runs write benchmarks/results/NAME.json, the committed figures. A ``--quick`` run is a
smoke test at small sizes, so unless it is given ``--out`` it writes under
benchmarks/results/quick/ (ignored by git) and never replaces the committed figures.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from ceir_sdk.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def result_path(name: str, quick: bool, out: str | Path | None = None) -> Path:
    if out is not None:
        return Path(out)
    return (RESULTS / "quick" if quick else RESULTS) / f"{name}.json"


def machine_info() -> dict[str, Any]:
    """The CPU model and its vector features: figures are comparable only on the same CPU."""
    from ceir_sdk.machine import read_cpu_info

    return {**read_cpu_info(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def write_result(path: Path, result: Any) -> None:
    """Write atomically: an interrupted run leaves the previous figures intact. Every result
    records the machine (``machine.cpu_model``, ``machine.cpu_features``)."""
    if isinstance(result, dict):
        result["machine"] = {**machine_info(), **(result.get("machine") or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
