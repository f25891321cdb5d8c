"""On-disk cache of backbone features, keyed by the backbone's spec and each image's content hash.

Layout under the root (default ``$CEIR_FEATURE_CACHE`` or ``~/.cache/ceir/features``)::

    <namespace>/namespace.json      what the namespace stands for (backbone spec, preprocessing)
    <namespace>/index.json          the committed shards: [{"file", "rows"}]
    <namespace>/shard-*.safetensors  "features" (n, D) float32; the n keys in the header metadata

Every file is written to a temporary name, fsynced and renamed, and a shard counts only once
the index names it, so an interrupted run leaves a valid cache that holds the work done so far.
A lock file serialises index updates between processes. Unreadable parts are ignored with a
warning: the cost of a damaged cache is re-encoding, never a crash or wrong features.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.atomic import atomic_write_bytes

logger = logging.getLogger("ceir_sdk.data")

CACHE_ENV = "CEIR_FEATURE_CACHE"
FORMAT = "ceir-feature-cache"
FORMAT_VERSION = 1
_OFF = {"", "0", "off", "none", "false", "no"}


def default_cache_root() -> Path | None:
    """``$CEIR_FEATURE_CACHE`` (a folder, or "off"), else ``$XDG_CACHE_HOME/ceir/features``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ceir" / "features"


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no advisory locks on this platform
        yield
        return
    with open(lock_path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def namespace_id(namespace: dict[str, Any]) -> str:
    blob = json.dumps(namespace, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class FeatureCache:
    """Features of one backbone configuration (``namespace``), looked up by content key."""

    def __init__(
        self, root: str | os.PathLike[str], namespace: dict[str, Any], dim: int, *, flush_every: int = 4096
    ) -> None:
        self.root = Path(root)
        self.namespace = namespace
        self.dim = int(dim)
        self.flush_every = int(flush_every)
        self.dir = self.root / namespace_id(namespace)
        self._where: dict[str, tuple[str, int]] = {}
        self._known_shards: set[str] = set()
        self._loaded: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending_keys: list[str] = []
        self._pending_rows: list[np.ndarray] = []
        self.hits = 0
        self.misses = 0
        self._refresh()

    # -- reading -------------------------------------------------------------
    def _read_index(self) -> list[dict[str, Any]]:
        path = self.dir / "index.json"
        if not path.exists():
            return []
        try:
            index = json.loads(path.read_text())
            if index.get("format") != FORMAT or index.get("format_version") != FORMAT_VERSION:
                logger.warning("ignoring feature cache %s: written by an incompatible version", self.dir)
                return []
            if int(index.get("dim", -1)) != self.dim:
                logger.warning("ignoring feature cache %s: feature size differs", self.dir)
                return []
            return list(index["shards"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable feature cache index %s (%s)", path, exc)
            return []

    def _refresh(self) -> None:
        from safetensors import safe_open

        for entry in self._read_index():
            name = str(entry.get("file", ""))
            if name in self._known_shards:
                continue
            self._known_shards.add(name)
            try:
                with safe_open(str(self.dir / name), framework="np") as f:
                    keys = json.loads((f.metadata() or {})["keys"])
            except Exception as exc:
                logger.warning("ignoring unreadable feature cache shard %s (%s)", name, exc)
                continue
            for row, key in enumerate(keys):
                self._where[key] = (name, row)

    def _shard(self, name: str) -> np.ndarray:
        from safetensors.numpy import load_file

        if name not in self._loaded:
            arr = load_file(str(self.dir / name))["features"]
            if arr.ndim != 2 or arr.shape[1] != self.dim:
                raise ValueError(f"shard {name} has shape {arr.shape}, expected (n, {self.dim})")
            self._loaded[name] = arr
            while len(self._loaded) > 8:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(name)
        return self._loaded[name]

    def __contains__(self, key: str) -> bool:
        return key in self._where or key in self._pending_keys

    def __len__(self) -> int:
        return len(self._where)

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Rows for the keys that are cached (committed or pending); the others are missing."""
        found: dict[str, np.ndarray] = {}
        pending = dict(zip(self._pending_keys, self._pending_rows))
        for key in keys:
            if key in found:
                continue
            if key in pending:
                found[key] = pending[key]
                continue
            where = self._where.get(key)
            if where is None:
                continue
            try:
                found[key] = self._shard(where[0])[where[1]]
            except Exception as exc:
                logger.warning("feature cache shard %s unreadable (%s); re-encoding", where[0], exc)
                self._where = {k: v for k, v in self._where.items() if v[0] != where[0]}
        self.hits += sum(1 for k in keys if k in found)
        self.misses += sum(1 for k in keys if k not in found)
        return found

    # -- writing -------------------------------------------------------------
    def put_many(self, keys: Sequence[str], features: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.float32)
        if features.shape != (len(keys), self.dim):
            raise ValueError(f"expected features of shape ({len(keys)}, {self.dim}), got {features.shape}")
        for key, row in zip(keys, features):
            if key not in self:
                self._pending_keys.append(key)
                self._pending_rows.append(row.copy())
        if len(self._pending_keys) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Commit pending rows as one shard and add it to the index (atomic, locked)."""
        if not self._pending_keys:
            return
        from safetensors.numpy import save

        keys, rows = self._pending_keys, np.stack(self._pending_rows).astype(np.float32)
        name = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
        self.dir.mkdir(parents=True, exist_ok=True)
        ns_path = self.dir / "namespace.json"
        if not ns_path.exists():
            atomic_write_bytes(ns_path, json.dumps(self.namespace, indent=2, default=str).encode())
        atomic_write_bytes(self.dir / name, save({"features": rows}, metadata={"keys": json.dumps(keys)}))
        with _locked(self.dir / ".lock"):
            shards = self._read_index()
            shards.append({"file": name, "rows": len(keys)})
            index = {"format": FORMAT, "format_version": FORMAT_VERSION, "dim": self.dim, "shards": shards}
            atomic_write_bytes(self.dir / "index.json", json.dumps(index, indent=1).encode())
        for row, key in enumerate(keys):
            self._where[key] = (name, row)
        self._known_shards.add(name)
        self._pending_keys, self._pending_rows = [], []
        self._refresh()  # pick up shards other processes committed meanwhile

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
