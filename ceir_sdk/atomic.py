"""Crash-safe file writes and checksums, shared by every part of the SDK.

A write goes to a temporary file beside the target, is fsynced, then renamed over it (and
the folder fsynced where the platform allows), so a reader sees the old file or the new one,
never half of one, and an interrupted write leaves the previous file intact.

Files and folders get the permissions an ordinary ``open`` or ``mkdir`` would give (the user's
umask applies; a replaced file keeps its mode). ``tempfile.mkstemp`` and ``mkdtemp`` would make
them private (0600 / 0700), and a model or bundle exported by one account must stay readable
by the service account that loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sibling_name(path: Path, tag: str = "tmp") -> Path:
    """A hidden, unique name beside ``path`` for staging a file or folder that replaces it."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def make_staging_dir(target: str | Path) -> Path:
    """Create an empty folder beside ``target`` with ordinary (umask) permissions."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        stage = sibling_name(target, "partial")
        try:
            stage.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return stage


def _create_temp_file(path: Path) -> tuple[int, Path]:
    """Open a new temp file beside ``path``: umask permissions, or ``path``'s own if it exists."""
    try:
        keep_mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        keep_mode = None
    while True:
        tmp = sibling_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if keep_mode is not None:
            with contextlib.suppress(OSError):
                os.chmod(tmp, keep_mode)
        return fd, tmp


def current_umask() -> int:
    """The process umask, read without changing it where the platform tells (Linux)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def save_safetensors_file(arrays: dict[str, Any], path: str | Path) -> Path:
    """safetensors' ``save_file`` (streamed, no second copy in memory) with ordinary permissions:
    on its own it leaves the file private (0600), unreadable by a service account."""
    from safetensors.numpy import save_file

    path = Path(path)
    save_file(arrays, str(path))
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~current_umask())
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Never leave temp files behind, KeyboardInterrupt included.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk (before it is renamed into place or listed as done)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | Path, *, temp_name: Callable[[Path], Path] = sibling_name) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write by any means (a library's own writer);
    on success it is fsynced and renamed over ``path``, on failure removed. ``temp_name`` names
    the temporary (a caller that sweeps its own leftovers by pattern chooses the pattern)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_format(data: Any, fmt: str, version: int, where: str, *, upgrade: str) -> dict[str, Any]:
    """``data`` (a manifest or config) must say ``"format": fmt`` with a ``format_version`` from 1
    to ``version``; otherwise an IncompatibleFileError naming ``where`` and, for a newer version,
    the way out (``upgrade``, e.g. "upgrade ceir-sdk or rebuild the index with this version")."""
    from ceir_sdk.errors import IncompatibleFileError

    if not isinstance(data, dict) or data.get("format") != fmt:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise IncompatibleFileError(f"{where} has format {found!r}, not {fmt!r}")
    got = data.get("format_version")
    if isinstance(got, int) and got > version:
        raise IncompatibleFileError(f"{where}: format_version {got} is not supported: {fmt} format version {got} is "
                                    f"newer than this version reads ({version}); {upgrade}")
    if not isinstance(got, int) or got < 1:
        raise IncompatibleFileError(f"{where}: format_version {got!r} is not supported ({fmt} format versions 1 to "
                                    f"{version} are); {upgrade}")
    return data


def verify_files(root: Path, files: dict[str, Any], *, what: str, remedy: str,
                 check_sums: bool = True) -> None:
    """Every file a manifest lists (``{name: {"sha256": ..., "bytes": ...}}``) is present, of the
    listed size where one is given, and (``check_sums``) matches its checksum; else an
    IncompatibleFileError naming the file, ``what`` it belongs to and the ``remedy``."""
    from ceir_sdk.errors import IncompatibleFileError

    for name, entry in files.items():
        path = root / name
        if not path.is_file():
            raise IncompatibleFileError(f"{what} {root} is missing {name}; {remedy}")
        size = entry.get("bytes")
        if size is not None and path.stat().st_size != size:
            raise IncompatibleFileError(f"{path} has the wrong size ({path.stat().st_size} bytes, the manifest "
                                        f"says {size}): {what} is damaged; {remedy}")
        if check_sums and sha256_file(path) != entry.get("sha256"):
            raise IncompatibleFileError(f"{path} does not match its checksum: {what} was altered or truncated; "
                                        f"{remedy}. Refusing to load it.")
