"""Turn an input collection into a deterministic plan: row numbers, ids, shards, read units.

The same input always yields the same rows in the same order, so shard ``k`` always holds
rows ``k*shard_size .. (k+1)*shard_size-1``: that is what lets a rerun skip finished shards.
Inputs: a folder of images (recursive, sorted by relative path), a list of image paths, or
parquet (a file or a folder of ``*.parquet``) with an image-bytes column or a path column.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ceir_sdk.errors import BadInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
BYTES_COLUMNS = ("image", "bytes", "image_bytes")
PATH_COLUMNS = ("path", "image_path", "file")


@dataclass
class ParquetPart:
    """One parquet file of the input: where its rows start and how its row groups split."""

    file: str
    column: str
    mode: str  # "bytes" or "path"
    row0: int
    group_rows: list[int]


@dataclass
class Plan:
    kind: str  # "files" or "parquet"
    ids: pa.Array  # string ids, one per row, in row order
    description: str
    paths: pa.Array | None = None  # kind == "files": absolute paths in row order
    parts: list[ParquetPart] = field(default_factory=list)  # kind == "parquet"

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """A hash of the ordered ids: a rerun on a changed input must not reuse old shards."""
        h = hashlib.sha256(f"{self.kind}\n{self.n_rows}\n".encode())
        for chunk in range(0, self.n_rows, 100_000):
            part = self.ids.slice(chunk, 100_000).to_pylist()
            h.update(("\n".join(part) + "\n").encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def n_shards(self, shard_size: int) -> int:
        return -(-self.n_rows // shard_size)

    def shard_range(self, shard: int, shard_size: int) -> tuple[int, int]:
        return shard * shard_size, min(self.n_rows, (shard + 1) * shard_size)

    def units(self, shards: Iterable[int], shard_size: int, unit_rows: int) -> list[str]:
        """JSON read units (at most ``unit_rows`` rows, never crossing a shard or a row group)."""
        out: list[str] = []
        for shard in shards:
            start, stop = self.shard_range(shard, shard_size)
            if self.kind == "files":
                assert self.paths is not None
                for a in range(start, stop, unit_rows):
                    b = min(stop, a + unit_rows)
                    paths = self.paths.slice(a, b - a).to_pylist()
                    out.append(json.dumps({"kind": "files", "row0": a, "paths": paths}))
            else:
                out.extend(self._parquet_units(start, stop, unit_rows))
        return out

    def _parquet_units(self, start: int, stop: int, unit_rows: int) -> list[str]:
        out = []
        for part in self.parts:
            g0 = part.row0
            for g, rows in enumerate(part.group_rows):
                lo, hi = max(start, g0), min(stop, g0 + rows)
                for a in range(lo, hi, unit_rows):
                    b = min(hi, a + unit_rows)
                    out.append(json.dumps({"kind": "parquet", "file": part.file, "column": part.column,
                                           "mode": part.mode, "group": g, "offset": a - g0, "n": b - a, "row0": a}))
                g0 += rows
        return out


def _image_files(folder: Path) -> list[str]:
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files.extend(os.path.join(dirpath, f) for f in filenames if f.lower().endswith(IMAGE_SUFFIXES))
    return sorted(files, key=lambda p: Path(p).relative_to(folder).as_posix())


def _pick(names: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, file: str) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise BadInputError(f"{file} has no column {wanted!r} (it has {', '.join(names)}); pass the right --{what}")
        return wanted
    return next((c for c in candidates if c in names), None)


def _parquet_plan(files: list[Path], column: str | None, id_column: str | None) -> Plan:
    parts: list[ParquetPart] = []
    ids: list[pa.Array] = []
    row0 = 0
    for f in files:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
        names = schema.names
        col = _pick(names, column, (*BYTES_COLUMNS, *PATH_COLUMNS), "column", str(f))
        if col is None:
            raise BadInputError(
                f"{f} has neither an image-bytes column ({', '.join(BYTES_COLUMNS)}) nor a path column "
                f"({', '.join(PATH_COLUMNS)}); name yours with --column"
            )
        typ = schema.field(col).type
        is_bytes = pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_struct(typ)
        mode = "bytes" if is_bytes else "path"
        if not is_bytes and not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise BadInputError(f"column {col!r} of {f} is {typ}; it must hold image bytes or path strings")
        n = pf.metadata.num_rows
        idc = _pick(names, id_column, ("id",), "id-column", str(f))
        if idc is not None:
            file_ids = pf.read(columns=[idc]).column(0).combine_chunks().cast(pa.string())
        elif mode == "path":
            file_ids = pf.read(columns=[col]).column(0).combine_chunks().cast(pa.string())
        else:
            file_ids = pa.array([str(i) for i in range(row0, row0 + n)], pa.string())
        if file_ids.null_count:
            raise BadInputError(f"{f}: the id column has {file_ids.null_count} empty values; ids must all be set")
        ids.append(file_ids)
        groups = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
        parts.append(ParquetPart(str(f.resolve()), col, mode, row0, groups))
        row0 += n
    all_ids = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    return Plan("parquet", all_ids, f"{len(files)} parquet file(s)", parts=parts)


def plan_input(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
               column: str | None = None, id_column: str | None = None) -> Plan:
    """Plan ``source``: a folder of images, a parquet file or folder of them, or a list of image paths."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise BadInputError(f"no such file or folder: {path}")
        if path.is_file():
            if path.suffix != ".parquet":
                raise BadInputError(f"{path} is neither a folder nor a .parquet file; give a folder or parquet")
            return _parquet_plan([path], column, id_column)
        parquets = sorted(path.glob("*.parquet"))
        if parquets:
            return _parquet_plan(parquets, column, id_column)
        files = _image_files(path)
        if not files:
            raise BadInputError(f"folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)}) and no parquet")
        rel = [Path(f).relative_to(path).as_posix() for f in files]
        abs_paths = [os.path.abspath(f) for f in files]
        return Plan("files", pa.array(rel, pa.string()), f"folder {path}", paths=pa.array(abs_paths, pa.string()))
    items = [os.fspath(p) for p in source]
    if not items:
        raise BadInputError("the list of images is empty")
    if len(set(items)) != len(items):
        raise BadInputError("the list of images names some paths twice; each row must be a distinct image")
    return Plan("files", pa.array(items, pa.string()), f"{len(items)} listed paths",
                paths=pa.array([os.path.abspath(p) for p in items], pa.string()))


def read_unit(unit: dict[str, Any]) -> tuple[int, list[Any]]:
    """(first row, items): items are bytes, or paths; resolved relative to the parquet file."""
    if unit["kind"] == "files":
        return int(unit["row0"]), list(unit["paths"])
    pf = pq.ParquetFile(unit["file"])
    col = pf.read_row_group(unit["group"], columns=[unit["column"]]).column(0)
    values = col.slice(unit["offset"], unit["n"]).to_pylist()
    if unit["mode"] == "bytes":
        # Hugging Face datasets store images as a struct {bytes, path}.
        values = [v.get("bytes") if isinstance(v, dict) else v for v in values]
    else:
        base = Path(unit["file"]).parent
        values = [v if v is None or os.path.isabs(v) else str(base / v) for v in values]
    return int(unit["row0"]), values
