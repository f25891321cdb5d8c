"""`ceir serve` on the command line, in a process where torch cannot be imported (a serving machine)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from onnx_helpers import TORCH_BLOCKER

CLI = TORCH_BLOCKER + "from ceir_sdk.cli import main; main()\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ceir_serve_runs_without_torch(bundle: Path, runtime: Any) -> None:
    port = _free_port()
    env = {**os.environ, "CEIR_SERVE_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, "-c", CLI, "serve", str(bundle), "--port", str(port),
                             "--max-batch-size", "4", "--precision", "fp32", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.post(f"{url}/v1/embeddings", json={"input": ["a striped cat"], "model": bundle.name}, timeout=60)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["data"][0]["embedding"], runtime.encode_texts(["a striped cat"])[1][0],
                                   atol=1e-5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_refuses_writes_without_an_index(bundle: Path) -> None:
    r = subprocess.run([sys.executable, "-c", "from ceir_sdk.cli import main; main()", "serve", str(bundle),
                        "--allow-writes"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--allow-writes needs --index" in r.stderr
