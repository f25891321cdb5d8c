"""Entry point of the static plugin (light imports only).

``static:PATH`` (a .txt or .json file), ``static`` with ``concepts=[...]``, and
``static:world10`` / ``static:world100_20`` (the drawn world's ground-truth concepts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ceir_sdk import hookimpl


def make_source(spec: str | None, **options: Any) -> Any:
    from ceir_sdk.errors import BadInputError
    from ceir_static.source import StaticConceptSource, WorldConceptSource, read_concept_file

    concepts = options.pop("concepts", None)
    path = options.pop("path", None)
    descriptive = bool(options.pop("descriptive", True))
    if options:
        raise BadInputError(
            f"static concept source: unknown options {sorted(options)}; it takes concepts=, path= or descriptive="
        )
    if concepts is not None:
        if spec or path:
            raise BadInputError("static: give either concepts=[...] or a file, not both")
        if isinstance(concepts, str) or not isinstance(concepts, list | tuple):
            raise BadInputError("static: concepts= must be a list of phrases")
        from ceir_static.source import ConceptOrigin, _merge

        return StaticConceptSource("static:list", _merge([(c, ConceptOrigin("list")) for c in concepts]))
    target = path or spec
    if not target:
        raise BadInputError(
            "static needs a file (static:PATH), a list (concepts=[...]) or a world (static:world10)"
        )
    file = Path(str(target)).expanduser()
    if not file.exists() and "/" not in str(target) and not file.suffix:
        return WorldConceptSource(str(target), descriptive=descriptive)
    found, saved = read_concept_file(file)
    return StaticConceptSource(f"static:{target}", found, saved)


@hookimpl
def register_concept_sources(register: Any) -> None:
    register(
        "static",
        make_source,
        description="concepts from a .txt/.json file (static:PATH), a list (concepts=[...]) or a world",
        options=("concepts", "path", "descriptive"),
    )
