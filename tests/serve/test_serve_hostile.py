"""Hostile images (the data tests' zoo) at every image endpoint: each a clear 4xx, the server still up."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import Server, data_uri

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from image_zoo import BAD, GOOD, NON_IMAGES, make_zoo

# What each bad file's error must say (the zoo's own words where the server's decoding differs).
WORDS = {"empty.png": "empty", "truncated.jpg": "truncated", "truncated.png": "truncated",
         "not_an_image.jpg": "not an image", "bomb.png": "pixels"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_zoo(tmp_path_factory.mktemp("zoo"))


def _bodies(image: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "embeddings item": ("/v1/embeddings", {"input": [{"modality": "image", "image": image}]}),
        "embeddings modality": ("/v1/embeddings", {"input": image, "modality": "image"}),
        "explain": ("/v1/explain", {"input": image}),
        "search": ("/v1/search", {"image": image, "k": 3}),
        "items": ("/v1/items", {"items": [{"image": image, "key": "hostile"}]}),
    }


def _b64(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_every_bad_file_gets_a_clear_4xx_everywhere(writable: Server, zoo: Path) -> None:
    assert set(WORDS) == set(BAD)
    count_before = httpx.get(f"{writable.url}/ready").json()["index"]["count"]
    for name in [*BAD, *NON_IMAGES]:
        for endpoint, (path, body) in _bodies(_b64(zoo / name)).items():
            r = httpx.post(f"{writable.url}{path}", json=body, timeout=60)
            assert 400 <= r.status_code < 500, (name, endpoint, r.status_code, r.text)
            message = r.json()["error"]["message"]
            assert "Traceback" not in r.text
            word = WORDS.get(name, "not an image")
            assert word in message.lower(), (name, endpoint, message)
            if name == "bomb.png":
                assert r.status_code == 413
        assert httpx.get(f"{writable.url}/health").status_code == 200
    # nothing half-added
    assert httpx.get(f"{writable.url}/ready").json()["index"]["count"] == count_before


def test_odd_but_valid_images_embed_as_the_runtime_embeds_them(server: Server, runtime: Any, zoo: Path) -> None:
    import numpy as np

    for name in GOOD:
        r = httpx.post(f"{server.url}/v1/embeddings", json={"input": data_uri(zoo / name), "modality": "image"},
                       timeout=60)
        assert r.status_code == 200, (name, r.text)
        want = runtime.embed(str(zoo / name))[0]
        assert np.abs(np.array(r.json()["data"][0]["embedding"]) - want).max() <= 1e-5, name


def test_pixel_limit_is_the_runtimes(bundle: Path, zoo: Path) -> None:
    from ceir_serve import create_app

    srv = Server(create_app(bundle, providers="cpu", precision="fp32", max_pixels=1000)).start()
    try:
        r = httpx.post(f"{srv.url}/v1/explain", json={"input": data_uri(zoo / "rgb.png")}, timeout=60)  # 40x30
        assert r.status_code == 413 and "1,000" in r.json()["error"]["message"], r.text
        r = httpx.post(f"{srv.url}/v1/search", json={"text": "cat"}, timeout=60)
        assert r.status_code == 404 and "--index" in r.json()["error"]["message"]
    finally:
        srv.stop()
