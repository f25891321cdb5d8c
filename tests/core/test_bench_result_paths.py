"""`make bench-quick` must never replace the committed full-size figures in benchmarks/results/."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _results_module():
    spec = importlib.util.spec_from_file_location("ceir_bench_results", ROOT / "benchmarks" / "_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_runs_write_outside_the_committed_figures() -> None:
    results = _results_module()
    full = results.result_path("cluster", quick=False)
    quick = results.result_path("cluster", quick=True)
    assert full == ROOT / "benchmarks" / "results" / "cluster.json"
    assert quick != full and quick.name == "cluster.json"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(quick)], cwd=ROOT)
    assert ignored.returncode == 0, f"{quick} would show up as a change to commit"
    assert results.result_path("cluster", quick=True, out="elsewhere.json") == Path("elsewhere.json")


def test_result_is_written_whole(tmp_path: Path) -> None:
    results = _results_module()
    target = tmp_path / "nested" / "figures.json"
    results.write_result(target, {"acc": 0.5})
    results.write_result(target, {"acc": 0.75})
    written = json.loads(target.read_text())
    assert written["acc"] == 0.75
    assert [p.name for p in target.parent.iterdir()] == ["figures.json"]
    # every result names the machine: figures are comparable only on the same CPU
    assert written["machine"]["cpu_model"] and isinstance(written["machine"]["cpu_features"], list)


def test_every_benchmark_routes_its_output_through_result_path() -> None:
    scripts = [p for p in (ROOT / "benchmarks").glob("*.py")
               if p.name not in {"run_all.py", "_results.py", "gpu_check.py"}]
    assert scripts
    for script in scripts:
        assert "result_path(" in script.read_text(), f"{script.name} picks its own output path"
