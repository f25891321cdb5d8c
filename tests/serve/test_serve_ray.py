"""Ray Serve: `ceir serve --ray` deploys the same app; 2 replicas on a local Ray give the single server's answers."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_helpers import data_uri

pytest.importorskip("ray")
pytest.importorskip("ray.serve")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_serve(bundle: Path) -> Any:
    import ray
    from ceir_serve.ray_backend import start_on_ray
    from ceir_serve.settings import ServeSettings
    from ray import serve

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=200 * 1024 * 1024)
    port = _free_port()
    settings = ServeSettings(providers="cpu", precision="fp32", max_batch_size=8, max_wait_ms=5, model_name="tiny",
                             threads=1)
    seconds = start_on_ray(bundle, None, settings, address="local", replicas=2, host="127.0.0.1", port=port,
                           replica_cpus=0.5)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    yield {"url": url, "start_s": seconds}
    serve.shutdown()
    ray.shutdown()


def test_two_replicas_serve_the_single_servers_embeddings(ray_serve: Any, runtime: Any,
                                                          image_files: list[Path]) -> None:
    from ray import serve

    status = serve.status().applications["ceir"].deployments["ceir"]
    states = {str(getattr(k, "value", k)): v for k, v in status.replica_states.items()}
    assert states.get("RUNNING") == 2, status
    url = ray_serve["url"]
    texts = ["a striped cat", "green grass", "feathers on a runway"]
    r = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": texts}, timeout=60)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose([d["embedding"] for d in r.json()["data"]], runtime.encode_texts(texts)[1], atol=1e-5)
    files = image_files[:4]
    want = runtime.embed([str(p) for p in files])
    # several requests, so both replicas answer some (Ray's proxy spreads them)
    for _ in range(4):
        r = httpx.post(f"{url}/v1/embeddings", json={"input": [data_uri(p) for p in files], "modality": "image"},
                       timeout=60)
        assert r.status_code == 200, r.text
        assert np.abs(np.array([d["embedding"] for d in r.json()["data"]]) - want).max() <= 1e-5
    bad = httpx.post(f"{url}/v1/explain", json={"input": "not base64 @@"}, timeout=60)
    assert bad.status_code == 422 and "base64" in bad.json()["error"]["message"]
    print(f"Ray Serve start-up with 2 replicas: {ray_serve['start_s']:.1f} s")
