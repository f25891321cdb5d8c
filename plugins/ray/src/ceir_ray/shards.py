"""Embedding shards on disk: parquet files plus a manifest that records the finished ones.

    out/
      manifest.json          format, input fingerprint, shard size, concepts, finished shards
      shard-000000.parquet   row (int64), id (string), latent (L floats), concepts (C floats), error

A shard is written to a temporary file, fsynced and renamed into place, and only then
recorded in the manifest (itself replaced atomically). A shard missing from the manifest is
redone on the next run; one in it is never written again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ceir_ray.atomic import remove_stale_temps, write_json, write_with
from ceir_sdk.errors import BadInputError, IncompatibleFileError

FORMAT = "ceir-embedding-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def shard_file(shard: int) -> str:
    return f"shard-{shard:06d}.parquet"


def _vectors(x: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(x)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def shard_table(rows: np.ndarray, ids: pa.Array, latent: np.ndarray, concepts: np.ndarray | None,
                errors: list[str | None] | None = None) -> pa.Table:
    cols: dict[str, Any] = {"row": pa.array(rows, pa.int64()), "id": ids, "latent": _vectors(latent)}
    if concepts is not None:
        cols["concepts"] = _vectors(concepts)
    cols["error"] = pa.array(errors if errors is not None else [None] * len(rows), pa.string())
    return pa.table(cols)


@dataclass
class ShardSet:
    """An output folder of shards and its manifest."""

    root: Path
    manifest: dict[str, Any]

    # -- creating / resuming -----------------------------------------------------------
    @classmethod
    def open_for_writing(cls, root: str | Path, *, fingerprint: str, n_rows: int, shard_size: int,
                         info: dict[str, Any]) -> ShardSet:
        """Start a new shard set, or resume one made from the same input with the same settings."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(root)
        path = root / MANIFEST
        if path.exists():
            shards = cls.open(root)
            old = shards.manifest
            changed = [k for k, new in (("input_fingerprint", fingerprint), ("n_rows", n_rows),
                                        ("shard_size", shard_size)) if old.get(k) != new]
            changed += [f"bundle {k}" for k, v in info.items() if k in old.get("info", {}) and old["info"][k] != v]
            if changed:
                raise BadInputError(
                    f"{root} holds shards from a different run ({', '.join(changed)} changed); "
                    "use a new output folder, or pass --overwrite to start over"
                )
            return shards
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "input_fingerprint": fingerprint,
                    "n_rows": n_rows, "shard_size": shard_size, "n_shards": -(-n_rows // shard_size),
                    "info": info, "shards": {}, "complete": False}
        write_json(path, manifest)
        return cls(root, manifest)

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> ShardSet:
        root = Path(root)
        path = root / MANIFEST
        if not path.exists():
            raise BadInputError(f"{root} is not a shard folder (no {MANIFEST}); run `ceir scale embed` first")
        manifest = json.loads(path.read_text("utf-8"))
        if manifest.get("format") != FORMAT:
            raise IncompatibleFileError(f"{path} is not a {FORMAT} manifest")
        if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
            raise IncompatibleFileError(
                f"{path} has format_version {manifest['format_version']}; this ceir-ray reads up to "
                f"{FORMAT_VERSION}; upgrade ceir-ray"
            )
        return cls(root, manifest)

    # -- state -------------------------------------------------------------------------
    @property
    def shard_size(self) -> int:
        return int(self.manifest["shard_size"])

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def n_shards(self) -> int:
        return int(self.manifest["n_shards"])

    def is_done(self, shard: int) -> bool:
        return str(shard) in self.manifest["shards"] and (self.root / shard_file(shard)).exists()

    def pending(self) -> list[int]:
        return [s for s in range(self.n_shards) if not self.is_done(s)]

    @property
    def complete(self) -> bool:
        return not self.pending()

    def expected_rows(self, shard: int) -> int:
        return min(self.n_rows, (shard + 1) * self.shard_size) - shard * self.shard_size

    # -- writing -----------------------------------------------------------------------
    def write_shard(self, shard: int, table: pa.Table) -> None:
        expected = self.expected_rows(shard)
        rows = table.column("row").to_numpy()
        want = np.arange(shard * self.shard_size, shard * self.shard_size + expected)
        if len(rows) != expected or not np.array_equal(rows, want):
            raise RuntimeError(f"shard {shard} must hold rows {want[0]}..{want[-1]} exactly once; refusing to write")
        write_with(self.root / shard_file(shard), lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        errors = int(table.column("error").is_valid().to_numpy(zero_copy_only=False).sum())
        self.manifest["shards"][str(shard)] = {"file": shard_file(shard), "rows": expected, "errors": errors}
        self.manifest["complete"] = len(self.manifest["shards"]) == self.n_shards
        write_json(self.root / MANIFEST, self.manifest)

    # -- reading -----------------------------------------------------------------------
    def files(self) -> list[Path]:
        if not self.complete:
            raise BadInputError(
                f"{self.root}: {len(self.pending())} of {self.n_shards} shards are unfinished; "
                "rerun `ceir scale embed` with the same arguments to finish them"
            )
        return [self.root / shard_file(s) for s in range(self.n_shards)]

    def iter_tables(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """One shard at a time, so nothing larger than a shard is ever in memory."""
        for f in self.files():
            yield pq.read_table(f, columns=columns)

    def read_all(self, columns: list[str] | None = None) -> pa.Table:
        """Every shard in one table (for small collections and tests)."""
        return pa.concat_tables(self.iter_tables(columns))

    def ids_for(self, rows: np.ndarray) -> list[str | None]:
        """Look up the ids of rows (e.g. search results), reading only the shards they fall in."""
        rows = np.asarray(rows, dtype=np.int64)
        out: list[str | None] = [None] * len(rows)
        for shard in np.unique(rows[rows >= 0] // self.shard_size):
            ids = pq.read_table(self.root / shard_file(int(shard)), columns=["id"]).column(0)
            for i in np.flatnonzero(rows // self.shard_size == shard):
                out[i] = ids[int(rows[i] - shard * self.shard_size)].as_py()
        return out


def column_matrix(table: pa.Table, name: str) -> np.ndarray:
    """A fixed-size-list column as a (N, D) float32 matrix (float16 shards are widened)."""
    col = table.column(name).combine_chunks()
    dim = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
