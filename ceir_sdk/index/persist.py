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
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ceir_sdk.atomic import atomic_write_text, check_format, fsync_dir, fsync_file, sha256_file, verify_files
from ceir_sdk.errors import IncompatibleFileError

if TYPE_CHECKING:
    from ceir_sdk.index.concept_index import ConceptIndex

FORMAT = "ceir-index"
FORMAT_VERSION = 1
POINTER = "CURRENT"
MANIFEST = "manifest.json"
_VERSION_DIR = re.compile(r"^v(\d{6,})$")
KEEP_VERSIONS = 2
log = logging.getLogger(__name__)


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
    check_format(manifest, FORMAT, FORMAT_VERSION, str(vdir),
                 upgrade="Upgrade ceir-sdk (or rebuild the index with this version).")
    verify_files(vdir, manifest.get("files", {}), what="the index version", check_sums=verify_checksums,
                 remedy="load an older version with version=N, or rebuild the index")
    return dict(manifest)


# -- a ConceptIndex written to and read from a version -------------------------------------
# These read and set the index's private stores: persistence is this module's job, and the
# class keeps only save()/load() that call here.

ARRAYS = "arrays.safetensors"
VECTORS = "vectors.faiss"
METADATA = "metadata.sqlite"


def save_index(index: ConceptIndex, path: str | Path, *, force: bool = False) -> Path:
    """Write ``index`` as a new version of ``path`` (see ``ConceptIndex.save``)."""
    import time

    import numpy as np

    from ceir_sdk._faiss import faiss
    from ceir_sdk._version import __version__
    from ceir_sdk.atomic import save_safetensors_file
    from ceir_sdk.index.calibration import CALIBRATION_FILE

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    with index._lock, save_lock(root):
        if not force:
            _check_not_overtaken(index, root)
        clean_stale(root)
        tmp, name = begin_version(root)
        try:
            store = index._store
            if store is not None:
                faiss.write_index(store.index, str(tmp / VECTORS))
            save_safetensors_file({"ids": np.ascontiguousarray(index._ids),
                                   "activations": np.ascontiguousarray(index._acts)}, tmp / ARRAYS)
            index._meta.save_to(tmp / METADATA)
            cal = index._calibrate_if_possible()
            if cal is not None:
                (tmp / CALIBRATION_FILE).write_text(json.dumps(cal.to_json()), encoding="utf-8")
            ref = index.encoder_ref
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION,
                "ceir_sdk_version": __version__, "faiss_version": faiss.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "generation": index.generation, "count": len(index), "dim": index.dim,
                "metric": index.metric, "factory": index.factory, "concepts": index.concepts,
                "presence_threshold": index.presence_threshold, "presence_rule": index.presence_rule,
                "encoder": None if ref is None else ref.with_relative_path(root).to_json(),
                "search": {"nprobe": None if store is None else store.nprobe,
                           "ef_search": None if store is None else store.ef_search},
                "tuning": index.tuning,
                "calibration": None if cal is None else CALIBRATION_FILE,
            }
            final = commit_version(root, tmp, name, manifest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        clean_stale(root)
        index._root, index._read_version = root.resolve(), name
        return final


def _check_not_overtaken(index: ConceptIndex, root: Path) -> None:
    if index._read_version is None or index._root != root.resolve():
        return  # a new index, or another directory: saving replaces what is there, as asked
    try:
        current = read_pointer(root)["version"]
    except IncompatibleFileError:
        return
    if current != index._read_version:
        from ceir_sdk.errors import ConflictError

        raise ConflictError(
            f"{root} was saved by another writer since this index was read (it now holds {current}; "
            f"this index was read as {index._read_version}); nothing was written. Load it again, re-apply "
            "the change and save, or save(..., force=True) to replace that version"
        )


def load_index(cls: type[ConceptIndex], path: str | Path, *, version: int | str | None = None,
               verify_checksums: bool = True, encoder: Any = None, use_gpu: bool | None = None,
               ignore_calibration: bool = False) -> ConceptIndex:
    """Read a version of ``path`` into a new ``cls`` (see ``ConceptIndex.load``)."""
    import numpy as np
    from safetensors.numpy import load_file

    from ceir_sdk._faiss import faiss
    from ceir_sdk.index.calibration import PresenceCalibration
    from ceir_sdk.index.concept_query import PRESENCE_RULES
    from ceir_sdk.index.metadata import MetadataStore
    from ceir_sdk.index.vectors import VectorStore

    root = Path(path)
    if version is None:
        vname = read_pointer(root)["version"]
        loaded_current = True
    else:
        vname = version if isinstance(version, str) else version_name(int(version))
        loaded_current = False  # an explicit older version: saving it back is a deliberate rollback
    vdir = root / vname
    if not vdir.is_dir():
        raise IncompatibleFileError(f"index version {vname} does not exist under {root}; "
                                    f"versions present: {versions(root)}")
    m = read_manifest(vdir, verify_checksums=verify_checksums)
    try:
        arrays = load_file(str(vdir / ARRAYS))
    except Exception as exc:  # safetensors raises its own error types
        raise IncompatibleFileError(f"{vdir / ARRAYS} is unreadable: {exc}") from exc
    threshold = float(m.get("presence_threshold", 0.0))
    # saved before presence rules existed: "threshold" only where a non-default z threshold was chosen
    rule = m.get("presence_rule", "threshold" if threshold != 0.0 else "calibrated")
    if rule not in PRESENCE_RULES:
        raise IncompatibleFileError(f"{vdir}: presence rule {rule!r} is not one of {', '.join(PRESENCE_RULES)}; "
                                    "this ceir-sdk may be too old for the index")
    index = cls(int(m["dim"]), m["concepts"], metric=m["metric"], factory=m["factory"], encoder=encoder,
                use_gpu=use_gpu, presence_threshold=threshold, presence_rule=rule)
    index._ids = arrays["ids"].astype(np.int64)
    index._acts = arrays["activations"].astype(np.float32).reshape(len(index._ids), len(index.concepts))
    index._meta = MetadataStore.load_from(vdir / METADATA)
    if (vdir / VECTORS).is_file():
        try:
            raw = faiss.read_index(str(vdir / VECTORS))
        except RuntimeError as exc:
            raise IncompatibleFileError(f"{vdir / VECTORS} is unreadable: {exc}") from exc
        search = m.get("search", {})
        index._store = VectorStore(raw, m["metric"], m["factory"], nprobe=search.get("nprobe"),
                                   ef_search=search.get("ef_search"), use_gpu=use_gpu)
    index.generation = int(m["generation"])
    index._root = root.resolve()
    index._read_version = vname if loaded_current else None
    index.tuning = m.get("tuning", {})
    index.encoder_ref = m.get("encoder")  # the setter reads the manifest's JSON
    if len(index._ids) != m["count"]:
        raise IncompatibleFileError(f"{vdir}: manifest says {m['count']} items, arrays hold {len(index._ids)}")
    index.check()
    if "calibration" not in m:
        if index.concepts:
            index.calibration_note = (
                f"{vdir} was saved without a presence calibration (ceir-sdk {m.get('ceir_sdk_version')}); "
                "one is fitted from the stored activations at the first calibrated concept query. "
                "Save the index to keep it, or use ranking='margin' for the old scoring.")
            log.warning("%s", index.calibration_note)
    elif m["calibration"] and not ignore_calibration:
        cpath = vdir / str(m["calibration"])
        try:
            data = json.loads(cpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IncompatibleFileError(
                f"{cpath} is unreadable ({exc}); load with ignore_calibration=True and call "
                "index.calibrate()") from exc
        index.calibration = PresenceCalibration.from_json(data, index.concepts, str(cpath))
    return index
