"""CPU or GPU: the extras never pair a CPU and a GPU build, two faiss builds are warned about,
a missing faiss is one clear line, and `ceir doctor` reports the builds (issue 22)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ceir_sdk import _faiss

ROOT = Path(__file__).resolve().parents[2]
FAISS_CPU, FAISS_GPU = set(_faiss.CPU_DISTRIBUTIONS), set(_faiss.GPU_DISTRIBUTIONS)
ORT_CPU, ORT_GPU = {"onnxruntime"}, {"onnxruntime-gpu"}


def _built_metadata(project: Path, files: list[str], tmp: Path) -> dict[str, list[Requirement]]:
    """Requirements by extra ("" = core) from the METADATA setuptools builds from ``project``'s
    pyproject.toml (in a copy, so the working tree's egg-info is left alone)."""
    work = tmp / project.name
    for rel in ["pyproject.toml", "README.md", *files]:
        dst = work / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if (project / rel).is_file():
            shutil.copy(project / rel, dst)
        else:
            dst.write_text("", encoding="utf-8")
    out = tmp / f"{project.name}-meta"
    out.mkdir()
    code = f"from setuptools import build_meta; print(build_meta.prepare_metadata_for_build_wheel({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    dist_info = out / done.stdout.strip().splitlines()[-1]
    msg = Parser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
    extras = msg.get_all("Provides-Extra") or []
    reqs = [Requirement(r) for r in msg.get_all("Requires-Dist") or []]
    by_extra: dict[str, list[Requirement]] = {}
    for extra in ["", *extras]:
        env = {"extra": extra}
        by_extra[extra] = [r for r in reqs if (r.marker is None and extra == "") or
                           (r.marker is not None and extra and r.marker.evaluate(env))]
    return by_extra


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[Requirement]]]:
    tmp = tmp_path_factory.mktemp("meta")
    return {
        "ceir-sdk": _built_metadata(ROOT, ["ceir_sdk/__init__.py", "ceir_sdk/_version.py"], tmp),
        "ceir-onnx": _built_metadata(ROOT / "exporters/onnx", ["src/ceir_onnx/__init__.py"], tmp),
    }


def _closure(metadata: dict[str, dict[str, list[Requirement]]], extra: str) -> set[str]:
    """Every distribution ceir-sdk[extra] pulls in, following the extras of our own packages."""
    names: set[str] = set()
    todo = [("ceir-sdk", extra)]
    seen = set()
    while todo:
        dist, ex = todo.pop()
        if (dist, ex) in seen:
            continue
        seen.add((dist, ex))
        for r in metadata[dist][ex] + (metadata[dist][""] if ex else []):
            names.add(r.name)
            if r.name in metadata:
                todo.extend((r.name, e) for e in [*r.extras, ""])
    return names


def test_core_depends_on_no_faiss_or_onnxruntime_build(metadata: dict) -> None:
    core = {r.name for r in metadata["ceir-sdk"][""]}
    assert not core & (FAISS_CPU | FAISS_GPU | ORT_CPU | ORT_GPU), core


def test_no_extra_pairs_a_cpu_and_a_gpu_build(metadata: dict) -> None:
    extras = [e for e in metadata["ceir-sdk"] if e]
    assert {"cpu", "gpu"} <= set(extras)
    for extra in extras:
        names = _closure(metadata, extra)
        for cpu, gpu in ((FAISS_CPU, FAISS_GPU), (ORT_CPU, ORT_GPU)):
            assert not (names & cpu and names & gpu), f"ceir-sdk[{extra}] installs {sorted(names & (cpu | gpu))}"


def test_cpu_and_gpu_sets_bring_their_builds(metadata: dict) -> None:
    cpu, gpu = _closure(metadata, "cpu"), _closure(metadata, "gpu")
    assert {"faiss-cpu", "onnxruntime"} <= cpu
    assert {"faiss-gpu", "onnxruntime-gpu"} <= gpu


def _fake_dist(where: Path, name: str, version: str) -> Path:
    """A second distribution as pip would leave it (dist-info only): what importlib.metadata sees."""
    info = where / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    return where


def _run(code: str, tmp: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=120)


def test_two_faiss_builds_warn_loudly_at_import(tmp_path: Path) -> None:
    fake = _fake_dist(tmp_path / "site", "faiss-gpu", "1.15.1")
    done = _run("import ceir_sdk.index", tmp_path, fake)
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr and "faiss-gpu==1.15.1" in done.stderr and "faiss-cpu==" in done.stderr
    assert "pip uninstall -y faiss-cpu faiss-gpu" in done.stderr
    # and doctor reports the clash and fails
    doctor = _run("from ceir_sdk.cli.main import main; main(['doctor', '--json'])", tmp_path, fake)
    assert doctor.returncode == 1
    rep = json.loads(doctor.stdout)
    assert rep["faiss"]["conflict"] and rep["faiss"]["active"]["build"] == "cpu"
    assert any("faiss-gpu==1.15.1" in p for p in rep["problems"])


def test_one_faiss_build_does_not_warn(tmp_path: Path) -> None:
    done = _run("import ceir_sdk.index", tmp_path)
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stderr


_BLOCK_FAISS = """
import sys
class _NoFaiss:
    def find_spec(self, name, path=None, target=None):
        if name == "faiss" or name.startswith("faiss."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoFaiss())
"""


def test_missing_faiss_is_one_line_naming_both_extras(tmp_path: Path) -> None:
    done = _run(_BLOCK_FAISS + f"from ceir_sdk.cli.main import main; main(['index', 'info', {str(tmp_path)!r}])",
                tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no faiss build is installed" in lines[0]
    assert "ceir-sdk[cpu]" in lines[0] and "ceir-sdk[gpu]" in lines[0]
    # Python users get the same error, which is also an ImportError
    done = _run(_BLOCK_FAISS + """
from ceir_sdk._faiss import MissingFaissError
try:
    import ceir_sdk.index
except MissingFaissError as exc:
    assert isinstance(exc, ImportError)
    print("raised:", exc)
""", tmp_path)
    assert done.returncode == 0 and "raised: the index needs faiss" in done.stdout, done.stderr


def test_doctor_without_faiss_and_the_cli_still_starts(tmp_path: Path) -> None:
    done = _run(_BLOCK_FAISS + "from ceir_sdk.cli.main import main; main(['doctor'])", tmp_path)
    assert done.returncode == 1
    assert "faiss: installed faiss-cpu" in done.stdout and "active: none" in done.stdout
    assert "ceir-sdk[gpu]" in done.stderr
    help_run = _run(_BLOCK_FAISS + "from ceir_sdk.cli.main import main; main(['--help'])", tmp_path)
    assert help_run.returncode == 0 and "index" in help_run.stdout


def test_doctor_reports_active_builds(tmp_path: Path) -> None:
    done = _run("from ceir_sdk.cli.main import main; main(['doctor', '--json'])", tmp_path)
    assert done.returncode == 0, done.stderr
    rep = json.loads(done.stdout)
    import faiss
    import onnxruntime

    assert rep["faiss"]["active"]["version"] == faiss.__version__
    assert rep["faiss"]["active"]["build"] == ("gpu" if hasattr(faiss, "StandardGpuResources") else "cpu")
    assert rep["onnxruntime"]["active"]["version"] == onnxruntime.__version__
    assert isinstance(rep["faiss"]["active"]["gpus_visible"], int)
    assert rep["problems"] == []
