from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from onnx_helpers import tiny_parts


@pytest.fixture(scope="session")
def tiny() -> Any:
    return tiny_parts()


@pytest.fixture(scope="session")
def bundle(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported bundle (fp32 + int8 + fp16 + text graph) shared by the tests."""
    from ceir_onnx.export import export_bundle

    parts, _ = tiny
    out = tmp_path_factory.mktemp("onnx") / "bundle"
    return export_bundle(parts, out, fp16=True, int8=True, progress=False)
