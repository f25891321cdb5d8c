"""Concept prompts as data: a JSON file the user can replace (``prompts=PATH``).

The file holds a system message and, per kind (features, superclasses, around), a
template with ``{class_name}`` and few-shot examples. Its SHA-256 goes into the
ConceptSet's provenance and into every cache key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ceir_sdk.errors import BadInputError

DEFAULT_PROMPTS = "default.json"


@dataclass(frozen=True)
class Prompts:
    system: str
    kinds: dict[str, dict[str, Any]]
    name: str = "custom"

    @property
    def hash(self) -> str:
        canonical = json.dumps({"system": self.system, "kinds": self.kinds}, sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def messages(self, kind: str, class_name: str) -> list[dict[str, str]]:
        """Chat turns (without the system message): few-shot pairs, then the question."""
        spec = self.kinds[kind]
        template: str = spec["template"]
        turns: list[dict[str, str]] = []
        for example in spec.get("few_shot", []):
            turns.append({"role": "user", "content": template.format(class_name=example["class_name"])})
            turns.append({"role": "assistant", "content": example["reply"]})
        turns.append({"role": "user", "content": template.format(class_name=class_name)})
        return turns


def _validate(data: Any, where: str) -> Prompts:
    def bad(problem: str) -> BadInputError:
        return BadInputError(
            f"prompts file {where}: {problem}. Start from the bundled file "
            "(ceir_sdk/concepts/prompt_files/default.json) and edit it."
        )

    if not isinstance(data, dict):
        raise bad("the top level must be a JSON object")
    system = data.get("system")
    kinds = data.get("kinds")
    if not isinstance(system, str) or not system.strip():
        raise bad('"system" must be a non-empty string')
    if not isinstance(kinds, dict) or not kinds:
        raise bad('"kinds" must map kind names (features, superclasses, around) to prompts')
    for kind, spec in kinds.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("template"), str):
            raise bad(f'kind {kind!r} needs a "template" string')
        if "{class_name}" not in spec["template"]:
            raise bad(f"the template of kind {kind!r} must contain {{class_name}}")
        for example in spec.get("few_shot", []):
            if not isinstance(example, dict) or not {"class_name", "reply"} <= set(example):
                raise bad(f'few_shot examples of kind {kind!r} need "class_name" and "reply"')
        try:
            spec["template"].format(class_name="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise bad(f"the template of kind {kind!r} has a stray brace field ({exc}); write {{{{ }}}}") from None
    return Prompts(system=system, kinds=kinds, name=str(data.get("name", "custom")))


def load_prompts(path: str | Path | None = None) -> Prompts:
    """The bundled prompts, or a user's JSON file of the same shape."""
    if path is None:  # joinpath takes one part per call on Python 3.10
        bundled = resources.files("ceir_sdk.concepts").joinpath("prompt_files").joinpath(DEFAULT_PROMPTS)
        text = bundled.read_text("utf-8")
        return _validate(json.loads(text), DEFAULT_PROMPTS)
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"prompts file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"prompts file {path} is not valid JSON: {exc}") from None
    return _validate(data, str(path))
