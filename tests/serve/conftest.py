"""Serve tests: a tiny real bundle (tests/onnx), an index built from it, real servers on loopback."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
# The tiny real open_clip model + CEIR head of the ONNX tests, and this folder's helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_helpers import Server, small_images

N_ITEMS = 60  # >= 50, so the index has a presence calibration


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ceir_onnx.export import export_bundle
    from onnx_helpers import tiny_parts

    parts, _ = tiny_parts()
    return export_bundle(parts, tmp_path_factory.mktemp("serve-onnx") / "bundle", progress=False)


@pytest.fixture(scope="session")
def runtime(bundle: Path) -> Any:
    from ceir_onnx.runtime import Runtime

    return Runtime(bundle, precision="fp32", providers="cpu")


@pytest.fixture(scope="session")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from PIL import Image

    root = tmp_path_factory.mktemp("serve-images")
    paths = []
    for i, img in enumerate(small_images(N_ITEMS)):
        p = root / f"img{i:03d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def index_dir(runtime: Any, image_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the images, built with the library, saved (its pristine copy: tests copy it)."""
    from ceir_sdk.index import ConceptIndex

    acts, lat = runtime.embed([str(p) for p in image_files], output="both")
    meta = [{"key": p.name, "path": str(p), "split": "even" if i % 2 == 0 else "odd"}
            for i, p in enumerate(image_files)]
    index = ConceptIndex.build(lat, acts, runtime.concepts, metadata=meta, metric="cosine", progress=False)
    out = tmp_path_factory.mktemp("serve-index") / "index"
    index.save(out)
    return out


def copy_index(index_dir: Path, dest: Path) -> Path:
    shutil.copytree(index_dir, dest)
    return dest


@pytest.fixture(scope="module")
def server(bundle: Path, index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A read-only server with the index; max_batch_size 8, max_wait 2 ms."""
    from ceir_serve import create_app

    idx = copy_index(index_dir, tmp_path_factory.mktemp("ro") / "index")
    app = create_app(bundle, idx, providers="cpu", precision="fp32", max_batch_size=8, max_wait_ms=2,
                     max_items=16, max_body_bytes=2 * 1024 * 1024, token_env="CEIR_SERVE_TEST_TOKEN",
                     model_name="tiny")
    srv = Server(app).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def writable(bundle: Path, index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with --allow-writes on its own copy of the index (``srv.index_dir``)."""
    from ceir_serve import create_app

    idx = copy_index(index_dir, tmp_path_factory.mktemp("rw") / "index")
    app = create_app(bundle, idx, providers="cpu", precision="fp32", max_batch_size=8, max_wait_ms=2,
                     allow_writes=True, model_name="tiny")
    srv = Server(app).start()
    srv.index_dir = idx  # type: ignore[attr-defined]
    yield srv
    srv.stop()
