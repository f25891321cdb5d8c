"""Crash-safe writes and checksummed reads for model directories (no pickle anywhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.atomic import sha256_bytes
from ceir_sdk.errors import IncompatibleFileError


def tensors_to_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    return save(arrays, metadata=metadata)


def read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise IncompatibleFileError(f"{what}: {path} is missing; is this a directory written by save()?")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleFileError(f"{what}: {path} is not valid JSON ({exc}); the file is damaged") from exc
    if not isinstance(obj, dict):
        raise IncompatibleFileError(f"{what}: {path} does not hold a JSON object")
    return obj


def read_checked_tensors(path: Path, expected_sha256: str | None, what: str) -> dict[str, np.ndarray]:
    """Load safetensors after checking the checksum recorded in config.json."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if not path.is_file():
        raise IncompatibleFileError(f"{what}: {path} is missing")
    data = path.read_bytes()
    if not expected_sha256:
        raise IncompatibleFileError(f"{what}: config.json records no checksum for {path.name}")
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise IncompatibleFileError(
            f"{what}: {path.name} does not match the checksum in config.json (expected "
            f"{expected_sha256[:12]}..., found {actual[:12]}...); the file was altered or only "
            "partly written. Re-save the model or restore the directory from a copy."
        )
    try:
        return dict(load(data))
    except (SafetensorError, ValueError) as exc:
        raise IncompatibleFileError(f"{what}: {path.name} is not a valid safetensors file ({exc})") from exc
