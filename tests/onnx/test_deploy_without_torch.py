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
