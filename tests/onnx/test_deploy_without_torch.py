"""A deployment installs no torch, matplotlib or scipy (issue 19): the CLI's index and explain
commands on a bundle run in a fresh interpreter in which importing any of them raises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from onnx_helpers import photo_like
from PIL import Image

ABSENT = ("torch", "torchvision", "open_clip", "matplotlib", "scipy", "sklearn")
# Put in front of the command: importing any of ABSENT raises, as on a machine without them;
# after the command, none of them may have been imported.
RUN = f"""import sys
ABSENT = {ABSENT!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ImportError(f"blocked import of {{name}} (a deployment does not install it)")
        return None
sys.meta_path.insert(0, Block())
from ceir_sdk.cli.main import main
try:
    main(sys.argv[1:])
finally:
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(ABSENT))
    assert not loaded, f"imported {{loaded}}"
"""


def _ceir(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CEIR_LOAD_PLUGINS": "onnx"}
    proc = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, f"ceir {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_index_and_explain_on_a_bundle_without_torch_matplotlib_scipy(bundle: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, seed in ((first, 21), (second, 22)):
        folder.mkdir()
        for i, image in enumerate(photo_like(4, seed=seed)):
            Image.fromarray(np.asarray(image)).save(folder / f"{i}.png")
    ix = str(tmp_path / "ix")
    built = _ceir("index", "build", ix, str(first), "--model", str(bundle), "--providers", "cpu",
                  "--precision", "int8", "--no-tune")
    assert "Built 4 items" in built.stdout
    assert "Added 4 items; the index holds 8" in _ceir("index", "add", ix, str(second), "--providers", "cpu").stdout
    text = _ceir("index", "search", ix, "--text", "striped fur", "-k", "3", "--json")
    assert len(json.loads(text.stdout)) == 3
    image = _ceir("index", "search", ix, "--image", str(first / "2.png"), "-k", "1", "--json")
    assert json.loads(image.stdout)[0]["path"].endswith("2.png")
    concepts = _ceir("index", "search", ix, "--concepts", "+striped fur", "-k", "2", "--no-strict")
    assert "score=" in concepts.stdout
    out = tmp_path / "explained"
    explained = _ceir("explain", str(bundle), str(first), "--out-dir", str(out), "--top", "3")
    records = json.loads((out / "explanations.json").read_text())
    assert len(records) == 4 and all(len(r["top"]) == 3 for r in records)
    assert explained.stdout.count("z-scores") == 4


def test_modules_that_need_no_torch_import_none() -> None:
    """ceir_sdk.model's torch-free modules, the plots module and the CLI modules load without torch,
    matplotlib or scipy (each needs its extra only when it draws or scores)."""
    script = RUN.split("from ceir_sdk.cli.main import main")[0] + (
        "import ceir_sdk.model.cluster, ceir_sdk.model.fileio, ceir_sdk.model.presence\n"
        "import ceir_sdk.viz, ceir_sdk.metrics\n"
        "import ceir_sdk.cli.model_cmd, ceir_sdk.cli.index_cmd, ceir_sdk.index\n"
        "from ceir_sdk.model import kmeans\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(ABSENT))\n"
        "assert not loaded, loaded\n"
        "try:\n"
        "    from ceir_sdk.model import CEIRModel\n"
        "except ImportError as exc:\n"
        "    assert 'torch' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('CEIRModel loaded without torch?')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_an_openvino_only_deployment_runs_without_onnxruntime(bundle: Path, tmp_path: Path) -> None:
    """With only the OpenVINO extra installed (no onnxruntime, no torch), `ceir index` builds and
    searches on a bundle: 'auto' picks OpenVINO, text queries run the text graph there too."""
    folder, more = tmp_path / "images", tmp_path / "more"
    for where, seed in ((folder, 23), (more, 24)):
        where.mkdir()
        for i, image in enumerate(photo_like(4, seed=seed)):
            Image.fromarray(np.asarray(image)).save(where / f"{i}.png")
    script = RUN.replace(f"ABSENT = {ABSENT!r}", f"ABSENT = {(*ABSENT, 'onnxruntime')!r}")
    ix = str(tmp_path / "ix")

    def ceir(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CEIR_LOAD_PLUGINS": "onnx", "CEIR_TUNE_CACHE": str(tmp_path / "tune.json")}
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=180,
                              env=env)

    built = ceir("index", "build", ix, str(folder), "--model", str(bundle), "--no-tune")
    assert built.returncode == 0, built.stderr[-3000:]
    assert "Built 4 items" in built.stdout
    found = ceir("index", "search", ix, "--text", "striped fur", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr[-3000:]
    assert len(json.loads(found.stdout)) == 2
    # Asking for onnxruntime there says what to install, and loses nothing.
    refused = ceir("index", "add", ix, str(more), "--backend", "onnxruntime")
    assert refused.returncode != 0
    assert "pip install 'ceir-onnx[cpu]'" in refused.stdout + refused.stderr and "Traceback" not in refused.stderr
    assert "the index holds 4" in ceir("index", "add", ix, str(folder)).stdout  # unchanged
