"""ceir-example-concepts: "example-csv:PATH" reads concepts from a CSV file with the columns
class, concept and (optionally) kind, one row per concept of a class."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from ceir_sdk import ConceptSourceBase, hookimpl
from ceir_sdk.errors import BadInputError


class CsvConcepts(ConceptSourceBase):
    def __init__(self, spec: str | None = None, **options: Any) -> None:
        super().__init__(**options)  # cache_dir, use_cache, max_retries (ConceptSourceBase)
        if not spec:
            raise BadInputError("example-csv needs a file: example-csv:PATH.csv")
        self.path = Path(spec).expanduser()
        if not self.path.is_file():
            raise BadInputError(f"example-csv: no file at {self.path}")
        self.name = f"example-csv:{spec}"
        self.rows: dict[str, dict[str, list[str]]] = {}
        with open(self.path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if not row.get("class") or not row.get("concept"):
                    raise BadInputError(f"{self.path}: every row needs 'class' and 'concept'; got {row}")
                kinds = self.rows.setdefault(row["class"].strip(), {})
                kinds.setdefault((row.get("kind") or "features").strip(), []).append(row["concept"])

    def concepts_for(self, class_name: str, *, domain: str | None = None) -> dict[str, list[str]]:
        if class_name not in self.rows:
            raise BadInputError(f"{self.path} has no rows for class {class_name!r}; it has {sorted(self.rows)}")
        return self.rows[class_name]

    def cache_fields(self) -> dict[str, Any]:
        # the file's content decides the answer (only used when use_cache=True)
        return {"source": "example-csv", "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest()}


@hookimpl
def register_concept_sources(register: Any) -> None:
    from ceir_sdk.plugin_bases.concept_source import BASE_OPTIONS

    register("example-csv", CsvConcepts, description="concepts per class from a CSV file (class,concept,kind)",
             options=BASE_OPTIONS)
