"""The bundle on disk: manifest format, checksums and atomic writes (no torch).

A bundle is a directory holding ``manifest.json`` plus the files it lists with their
SHA-256. Loading verifies every listed file, so a truncated or altered graph is refused
before onnxruntime ever parses it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ceir_sdk.atomic import check_format, fsync_file, make_staging_dir, sha256_file, verify_files
from ceir_sdk.errors import BadInputError, IncompatibleFileError

FORMAT = "ceir-onnx-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@contextmanager
def staged_directory(out_dir: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temp directory next to ``out_dir`` that replaces it only on success.

    An interrupted export leaves any earlier bundle at ``out_dir`` untouched.
    """
    out = Path(out_dir).resolve()
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another OUT_DIR or pass --overwrite")
    if out.exists() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise BadInputError(f"{out} exists and is not a ceir bundle; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = make_staging_dir(out)  # umask permissions: the service that loads the bundle must read it
    try:
        yield stage
        for item in stage.iterdir():
            if item.is_file():
                fsync_file(item)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(stage, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def recognises(path: str | Path) -> bool:
    """Whether ``path`` holds a manifest of this format (cheap: no checksums)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def fingerprint(path: str | Path) -> str | None:
    """The checksum of the fp32 image graph (backbone, concept head and latent encoder in one)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
        image = manifest["graphs"]["image"]["variants"]["fp32"]["file"]
        return str(manifest["files"][image]["sha256"])
    except (KeyError, TypeError, ValueError, OSError):
        return None


def read_manifest(bundle_dir: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """Read and check a bundle's manifest; with ``verify`` also every file's checksum."""
    root = Path(bundle_dir)
    path = root / MANIFEST
    if not path.is_file():
        raise IncompatibleFileError(
            f"{root} is not a ceir ONNX bundle (no {MANIFEST}); create one with `ceir export onnx`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IncompatibleFileError(f"{path} is not valid JSON ({exc}); re-export the bundle") from exc
    check_format(manifest, FORMAT, FORMAT_VERSION, str(path),
                 upgrade="the bundle is newer than this runtime reads; upgrade ceir-onnx or re-export with this "
                         "version")
    if verify:
        verify_files_of(root, manifest)
    return manifest


def verify_files_of(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is present and matches its checksum."""
    verify_files(root, manifest.get("files", {}), what="bundle",
                 remedy="re-export the bundle or copy it again completely")
