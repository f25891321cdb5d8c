"""Per-item metadata (id, key, path, JSON fields) in SQLite, plus metadata filters.

The live store is an in-memory database so that saved versions stay immutable; saving
copies it with SQLite's backup API into the new version directory.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError, IncompatibleFileError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    key TEXT UNIQUE,
    path TEXT,
    fields TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_COLUMNS = {"id", "key", "path"}
_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _column(name: str) -> str:
    if name in _COLUMNS:
        return name
    if not _FIELD.match(name):
        raise BadInputError(
            f"metadata field name {name!r} is not usable in a filter; use letters, digits, '_', '.', '-'"
        )
    # The name pattern admits no quote, so inlining the JSON path is safe; dots nest.
    path = ".".join(f'"{part}"' for part in name.split("."))
    return f"json_extract(fields, '$.{path}')"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:45]}...{text[-10:]}"


def _scalar(value: Any, name: str) -> Any:
    if isinstance(value, bool):
        return int(value)  # json_extract returns 0/1 for JSON booleans
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise BadInputError(f"filter value {value!r} for {name!r} must be a string, number, bool or None")


_RANGE = ("$gt", "$gte", "$lt", "$lte")


def _is_number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _comparisons(where: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(field, operator, value) of every ordering comparison in ``where``."""
    out: list[tuple[str, str, Any]] = []
    for name, cond in where.items():
        if isinstance(cond, Mapping):
            out.extend((str(name), op, value) for op, value in cond.items() if op in _RANGE)
    return out


def compile_filter(where: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    """``{"split": "test", "label": ["cat", "dog"], "size": {"$gt": 3}}`` -> SQL and parameters.

    A plain value means equality, a list means "one of", a mapping holds operators
    ($eq $ne $gt $gte $lt $lte $in $nin $exists). ``id``, ``key`` and ``path`` are columns;
    every other name is a field of the item's metadata.
    """
    if not where:
        return "1", []
    if not isinstance(where, Mapping):
        raise BadInputError(f"a metadata filter is a mapping such as {{'split': 'test'}}, not {where!r}")
    clauses: list[str] = []
    params: list[Any] = []
    for name, cond in where.items():
        col = _column(str(name))
        if isinstance(cond, Mapping):
            ops = cond
        elif isinstance(cond, (list, tuple, set, frozenset)):
            ops = {"$in": cond}
        else:
            ops = {"$eq": cond}
        for op, value in ops.items():
            if op in _OPS:
                v = _scalar(value, name)
                if name == "id" and isinstance(v, str) and not _is_number_text(v):
                    raise BadInputError(
                        f"filter id {_OPS[op]} {_short(v)} compares the integer id with text, which matches "
                        "nothing; compare it with a number, e.g. id>17")
                if v is None and op in ("$eq", "$ne"):
                    clauses.append(f"{col} IS {'NOT ' if op == '$ne' else ''}NULL")
                else:
                    clauses.append(f"{col} {_OPS[op]} ?")
                    params.append(v)
            elif op in ("$in", "$nin"):
                values = [_scalar(v, name) for v in value]
                if not values:
                    clauses.append("0" if op == "$in" else "1")
                    continue
                clauses.append(f"{col} {'NOT ' if op == '$nin' else ''}IN ({','.join('?' * len(values))})")
                params.extend(values)
            elif op == "$exists":
                clauses.append(f"{col} IS {'NOT ' if value else ''}NULL")
            else:
                raise BadInputError(
                    f"unknown filter operator {op!r} for {name!r}; use one of "
                    f"{', '.join([*_OPS, '$in', '$nin', '$exists'])}"
                )
    return " AND ".join(clauses) or "1", params


class MetadataStore:
    """SQLite table of items; every write goes through one transaction the caller controls."""

    #: Filters whose ids are kept (most recently used first out last). A filter's ids stay valid
    #: until the next insert or delete, and a service asks the same few filters again and again:
    #: without this, every filtered query scanned the table (json_extract per row; at 1M items
    #: that scan costs far more than the faiss search it feeds).
    FILTER_CACHE_SIZE = 32

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        self.conn = conn or sqlite3.connect(":memory:", check_same_thread=False)
        # Autocommit: transactions are only the explicit BEGIN/COMMIT of ConceptIndex.add/remove,
        # so no stray implicit transaction can hold a lock that would stall a save.
        self.conn.isolation_level = None
        self.conn.executescript(_SCHEMA)
        self._filter_cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()

    # -- writes (inside the caller's transaction) -------------------------------------
    def insert(self, ids: np.ndarray, records: Sequence[Mapping[str, Any]]) -> None:
        rows = []
        for i, rec in zip(ids.tolist(), records):
            rec = dict(rec)
            key, path = rec.pop("key", None), rec.pop("path", None)
            rec.pop("id", None)
            try:
                fields = json.dumps(rec, allow_nan=False, default=_json_default)
            except (TypeError, ValueError) as exc:
                raise BadInputError(f"metadata of item {i} is not JSON-serialisable: {exc}") from exc
            rows.append((i, None if key is None else str(key), None if path is None else str(path), fields))
        self._filter_cache.clear()  # before the write: a rolled-back insert must not leave stale ids either
        try:
            self.conn.executemany("INSERT INTO items (id, key, path, fields) VALUES (?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError as exc:
            raise BadInputError(f"duplicate item id or key ({exc}); ids and keys must be unique") from exc

    def delete(self, ids: np.ndarray) -> None:
        self._filter_cache.clear()
        self.conn.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids.tolist()])

    def set_meta(self, name: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, json.dumps(value)),
        )

    # -- reads -------------------------------------------------------------------------
    def get_meta(self, name: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def all_ids(self) -> np.ndarray:
        rows = self.conn.execute("SELECT id FROM items ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def existing(self, ids: Iterable[int]) -> list[int]:
        ids = list(ids)
        found: list[int] = []
        for start in range(0, len(ids), 900):  # SQLite's parameter limit
            chunk = ids[start : start + 900]
            q = f"SELECT id FROM items WHERE id IN ({','.join('?' * len(chunk))})"
            found.extend(r[0] for r in self.conn.execute(q, chunk))
        return found

    def ids_for_keys(self, keys: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(keys), 900):
            chunk = list(keys[start : start + 900])
            q = f"SELECT key, id FROM items WHERE key IN ({','.join('?' * len(chunk))})"
            out.update({k: i for k, i in self.conn.execute(q, chunk)})
        return out

    def filter_ids(self, where: Mapping[str, Any] | None) -> np.ndarray:
        """Sorted ids of the items matching ``where``: a read-only array, the same object for the
        same filter until the store changes (so searches can cache what they build from it)."""
        sql, params = compile_filter(where)
        # the parameters' types are part of the key: 1, 1.0 and True are one value to Python only
        key = (sql, *((type(p).__name__, p) for p in params))
        cached = self._filter_cache.get(key)
        if cached is not None:
            self._filter_cache.move_to_end(key)
            return cached
        try:
            rows = self.conn.execute(f"SELECT id FROM items WHERE {sql} ORDER BY id", params).fetchall()
        except sqlite3.Error as exc:
            raise BadInputError(f"metadata filter {dict(where or {})!r} failed: {exc}") from exc
        if not rows and where:
            self._check_comparison_types(where)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        ids.flags.writeable = False
        self._filter_cache[key] = ids
        while len(self._filter_cache) > self.FILTER_CACHE_SIZE:
            self._filter_cache.popitem(last=False)
        return ids

    def _check_comparison_types(self, where: Mapping[str, Any]) -> None:
        """An ordering comparison that matched nothing because it compares numbers with text (or
        text with numbers) is a mistake, not an empty answer: say so. SQLite orders every number
        before every text, so `n > 'abc'` is false for all numeric n."""
        for name, op, value in _comparisons(where):
            if name in _COLUMNS:
                continue  # id is checked when compiling; key and path are text and compare as text
            col = _column(name)
            kind = col.replace("json_extract(", "json_type(", 1)
            stored = {r[0] for r in self.conn.execute(
                f"SELECT DISTINCT {kind} FROM items WHERE {kind} IS NOT NULL LIMIT 8").fetchall()}
            numeric_field = bool(stored) and stored <= {"integer", "real"}
            text_field = stored == {"text"}
            if numeric_field and isinstance(value, str) and not _is_number_text(value):
                raise BadInputError(
                    f"filter {name} {_OPS[op]} {_short(value)} compares {name!r}, which holds numbers, with text, "
                    f"so it matches nothing; compare it with a number, e.g. {name}{_OPS[op]}3")
            if text_field and isinstance(value, (int, float)) and not isinstance(value, bool):
                raise BadInputError(
                    f"filter {name} {_OPS[op]} {value!r} compares {name!r}, which holds text, with a number, "
                    "so it matches nothing; compare it with text")

    def records(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            q = f"SELECT id, key, path, fields FROM items WHERE id IN ({','.join('?' * len(chunk))})"
            for i, key, path, fields in self.conn.execute(q, chunk):
                out[i] = {"key": key, "path": path, "fields": json.loads(fields)}
        return out

    # -- persistence -------------------------------------------------------------------
    def save_to(self, path: Path) -> None:
        if self.conn.in_transaction:
            raise RuntimeError("metadata has an open transaction; finish it before saving")
        dst = sqlite3.connect(str(path))
        try:
            self.conn.backup(dst)
        finally:
            dst.close()

    @classmethod
    def load_from(cls, path: Path) -> MetadataStore:
        try:
            src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            mem = sqlite3.connect(":memory:", check_same_thread=False)
            src.backup(mem)
            src.close()
            mem.execute("SELECT id, key, path, fields FROM items LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise IncompatibleFileError(f"metadata database {path} is unreadable: {exc}") from exc
        return cls(mem)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
