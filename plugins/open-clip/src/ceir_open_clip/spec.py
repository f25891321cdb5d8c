"""Parse the part after ``open-clip:`` into what open_clip's loader takes (no torch import).

    ceir-world                         the bundled offline model (default when nothing is given)
    ceir-world-small                   a smaller bundled model, the world's stand-in for a separate
                                       concept model (as CEIR pairs ViT-L/14 with ViT-B/16)
    MODEL/TAG                          open_clip pretrained tag, e.g. ViT-B-32/laion2b_s34b_b79k
    MODEL@/path/to/ckpt.safetensors    a local checkpoint (.safetensors, .pt, .pth, .bin)
    MODEL                              random weights (seeded, so reproducible)
    hf-hub:org/repo | local-dir:/path  open_clip's own schemas
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ceir_sdk.errors import BadInputError

Kind = Literal["world", "tag", "checkpoint", "random", "hf-hub", "local-dir"]
WORLD = "ceir-world"
WORLD_MODELS = (WORLD, "ceir-world-small")  # trained by scripts/train_world_clip.py, shipped in world_model/
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".npz")


@dataclass(frozen=True)
class ModelSource:
    kind: Kind
    spec: str  # canonical text after "open-clip:"
    model_name: str  # first argument of open_clip.create_model_and_transforms
    pretrained: str | None = None  # tag or checkpoint path


def parse_spec(spec: str | None) -> ModelSource:
    text = (spec or WORLD).strip()
    if not text:
        text = WORLD
    if text in WORLD_MODELS:
        return ModelSource("world", text, text)
    for schema in ("hf-hub:", "local-dir:"):
        if text.startswith(schema):
            ident = text[len(schema) :]
            if not ident:
                raise BadInputError(f"open-clip:{text} names no {schema[:-1]} source; e.g. open-clip:{schema}org/repo")
            if schema == "local-dir:":
                ident = str(Path(ident).expanduser().resolve())
            return ModelSource(schema[:-1], schema + ident, schema + ident)  # type: ignore[arg-type]
    if "@" in text:
        model, _, raw_path = text.partition("@")
        if not model or not raw_path:
            raise BadInputError(f"open-clip:{text}: expected MODEL@/path/to/checkpoint")
        path = Path(os.path.expandvars(raw_path)).expanduser().resolve()
        if not path.is_file():
            raise BadInputError(
                f"checkpoint file not found: {path} (from open-clip:{text}); check the path, "
                "or use open-clip:MODEL/TAG for an open_clip pretrained tag"
            )
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise BadInputError(
                f"checkpoint {path} has suffix {path.suffix!r}; expected one of {', '.join(CHECKPOINT_SUFFIXES)}"
            )
        return ModelSource("checkpoint", f"{model}@{path}", model, str(path))
    if "/" in text:
        model, _, tag = text.partition("/")
        if not model or not tag:
            raise BadInputError(f"open-clip:{text}: expected MODEL/TAG, e.g. open-clip:ViT-B-32/laion2b_s34b_b79k")
        return ModelSource("tag", f"{model}/{tag}", model, tag)
    return ModelSource("random", text, text)
