"""A versioned index directory with atomic saves.

Layout::

    my-index/
      CURRENT            {"version": "v000007", "generation": 42}   (the only pointer)
      v000006/           the previous version, still loadable
      v000007/           manifest.json, vectors.faiss, arrays.safetensors, metadata.sqlite
      .tmp-v000008-...   a save in progress (or one a crash interrupted; removed later)

A save writes a complete version into a temporary directory, fsyncs every file and the
directory, renames it into place, fsyncs the parent, and only then swaps ``CURRENT``
(temp file + fsync + ``os.replace``). Until that last rename the previous version is what
loads; after it the new one does. Nothing is ever modified in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ceir_sdk.atomic import atomic_write_text, fsync_dir, sha256_file
from ceir_sdk.errors import IncompatibleFileError

FORMAT = "ceir-index"
FORMAT_VERSION = 1
POINTER = "CURRENT"
MANIFEST = "manifest.json"
_VERSION_DIR = re.compile(r"^v(\d{6,})$")
KEEP_VERSIONS = 2


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def versions(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _VERSION_DIR.match(p.name)
        if m and p.is_dir():
            out.append(int(m.group(1)))
    return sorted(out)


def version_name(number: int) -> str:
    return f"v{number:06d}"


def read_pointer(root: Path) -> dict[str, Any]:
    ptr = root / POINTER
    if not ptr.is_file():
        if (root / MANIFEST).is_file():
            raise IncompatibleFileError(
                f"{root} is a single index version, not an index directory; load its parent directory"
            )
        raise IncompatibleFileError(
            f"no saved index at {root} (no {POINTER} file); build one with `ceir index build` or ConceptIndex.save()"
        )
    try:
        data = json.loads(ptr.read_text(encoding="utf-8"))
        if not _VERSION_DIR.match(str(data["version"])):
            raise ValueError(f"bad version name {data['version']!r}")
        return dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise IncompatibleFileError(f"{ptr} is damaged ({exc}); load an older version with version=N") from exc


@contextlib.contextmanager
def save_lock(root: Path) -> Iterator[None]:
    """One writer at a time per index directory (advisory lock; no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(root: Path, keep: int = KEEP_VERSIONS) -> None:
    """Drop temp dirs left by dead savers, and versions older than the last ``keep``."""
    for p in root.glob(".tmp-*"):
        parts = p.name.split("-")
        pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
    try:
        current = int(read_pointer(root)["version"][1:])
    except IncompatibleFileError:
        return
    nums = [v for v in versions(root) if v <= current]
    for v in nums[:-keep] if keep > 0 else []:
        shutil.rmtree(root / version_name(v), ignore_errors=True)
    for v in versions(root):
        if v > current:  # renamed into place by a save that died before swapping CURRENT
            shutil.rmtree(root / version_name(v), ignore_errors=True)


def begin_version(root: Path) -> tuple[Path, str]:
    root.mkdir(parents=True, exist_ok=True)
    number = max(versions(root), default=0) + 1
    name = version_name(number)
    tmp = root / f".tmp-{os.getpid()}-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp, name


def commit_version(root: Path, tmp: Path, name: str, manifest: dict[str, Any]) -> Path:
    """Checksum, write the manifest, fsync, rename into place, then swap CURRENT."""
    files = {}
    for p in sorted(tmp.iterdir()):
        fsync_file(p)
        files[p.name] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    manifest = {**manifest, "files": files}
    with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    final = root / name
    os.rename(tmp, final)
    fsync_dir(root)
    atomic_write_text(root / POINTER, json.dumps({"version": name, "generation": manifest["generation"]}))
    return final


def read_manifest(vdir: Path, verify_checksums: bool = True) -> dict[str, Any]:
    try:
        manifest = json.loads((vdir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IncompatibleFileError(f"{vdir} has no {MANIFEST}; it is not a complete index version") from exc
    except ValueError as exc:
        raise IncompatibleFileError(f"{vdir / MANIFEST} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise IncompatibleFileError(f"{vdir} holds {manifest.get('format')!r}, not a {FORMAT!r}")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or fv > FORMAT_VERSION or fv < 1:
        raise IncompatibleFileError(
            f"{vdir} has index format version {fv}; this ceir-sdk reads version {FORMAT_VERSION}. "
            "Upgrade ceir-sdk (or rebuild the index with this version)."
        )
    for name, info in manifest.get("files", {}).items():
        p = vdir / name
        if not p.is_file() or p.stat().st_size != info["bytes"]:
            raise IncompatibleFileError(f"{p} is missing or has the wrong size; the index version is damaged")
        if verify_checksums and sha256_file(p) != info["sha256"]:
            raise IncompatibleFileError(f"{p} does not match its checksum; the index version was altered")
    return dict(manifest)
