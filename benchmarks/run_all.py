"""Run every benchmark in this folder (``make bench``; ``--quick`` for small sizes).

Each benchmark is its own script writing benchmarks/results/NAME.json; this runner only
sequences them and reports which failed, so one broken harness does not hide the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py", "gpu_check.py", "__init__.py"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("names", nargs="*", help="benchmark names (default: all)")
    args = parser.parse_args()
    scripts = sorted(p for p in HERE.glob("*.py") if p.name not in SKIP and not p.name.startswith("_"))
    if args.names:
        scripts = [p for p in scripts if p.stem in args.names]
    failures = []
    for script in scripts:
        command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"== {script.stem}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        result = subprocess.run(command)
        print(f"== {script.stem}: exit {result.returncode} in {time.perf_counter() - start:.0f}s", flush=True)
        if result.returncode != 0:
            failures.append(script.stem)
    if failures:
        print(f"failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
