"""Build an open_clip model through open_clip's own loader, turning its failures into clear errors."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ceir_open_clip.spec import ModelSource
from ceir_sdk.errors import BadInputError, CeirError, IncompatibleFileError, UnknownNameError


@dataclass
class Loaded:
    model: Any
    preprocess: Any  # open_clip's inference transform (PIL -> tensor)
    tokenizer: Any
    model_name: str  # open_clip model name actually used
    pretrained: str | None
    weights_sha256: str | None


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _world_checkpoint() -> tuple[str, str]:
    """Register the bundled world model config with open_clip; return (model name, checkpoint)."""
    try:
        from ceir_open_clip.world_model import WORLD_MODEL_NAME, checkpoint_path, register_with_open_clip
    except ImportError as exc:
        raise CeirError(
            f"the bundled ceir-world model is not available in this install ({exc}); "
            "reinstall ceir-open-clip, or name another model, e.g. open-clip:ViT-B-32/laion2b_s34b_b79k"
        ) from None
    register_with_open_clip()
    path = Path(checkpoint_path())
    if not path.is_file():
        raise CeirError(
            f"the ceir-world checkpoint {path} is missing; train it with the world-model training script "
            "(see plugins/open-clip/src/ceir_open_clip/world_model) or name another backbone"
        )
    return WORLD_MODEL_NAME, str(path)


def _check_model_name(name: str) -> None:
    import open_clip

    known = open_clip.list_models()
    if name.replace("/", "-") not in known:
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        raise UnknownNameError(
            f"open_clip has no model named {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
            + " (`python -c 'import open_clip; print(open_clip.list_models())'` lists them)"
        )


def _check_tag(name: str, tag: str) -> None:
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise UnknownNameError(
            f"open_clip has no pretrained tag {tag!r} for {name}; "
            + (f"known tags: {', '.join(tags)}" if tags else "this model has no pretrained tags")
            + f"; for a local file use open-clip:{name}@/path/to/checkpoint.safetensors"
        )


def load(source: ModelSource, *, device: str, seed: int = 0) -> Loaded:
    import open_clip
    import torch

    model_name, pretrained, sha = source.model_name, source.pretrained, None
    if source.kind == "world":
        model_name, pretrained = _world_checkpoint()
    if source.kind in ("world", "tag", "checkpoint", "random"):
        _check_model_name(model_name)
    if source.kind == "tag":
        _check_tag(model_name, str(pretrained))
    if pretrained is not None and source.kind in ("world", "checkpoint"):
        sha = file_sha256(pretrained)
    try:
        with torch.random.fork_rng(devices=[]):
            # Seeded so that a random-weight model is the same model every time (tests, caching).
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device
            )
        tokenizer = open_clip.get_tokenizer(model_name)
    except RuntimeError as exc:
        text = str(exc)
        if source.kind in ("world", "checkpoint") and ("state_dict" in text or "size mismatch" in text):
            raise IncompatibleFileError(
                f"checkpoint {pretrained} does not fit open_clip model {model_name!r}: {_first_lines(text)}; "
                "check that the model name matches the architecture the checkpoint was trained with"
            ) from None
        if source.kind in ("tag", "hf-hub"):
            raise CeirError(
                f"could not fetch weights for open-clip:{source.spec} ({_first_lines(text)}). "
                "Without network access (or with HF_HUB_OFFLINE=1) download them elsewhere and pass the "
                f"file: open-clip:{model_name.removeprefix('hf-hub:')}@/path/to/open_clip_model.safetensors"
            ) from None
        raise CeirError(f"open_clip could not build {source.spec}: {_first_lines(text)}") from None
    except (OSError, ValueError) as exc:
        if source.kind in ("world", "checkpoint"):
            raise IncompatibleFileError(
                f"cannot read checkpoint {pretrained}: {_first_lines(str(exc))}; it may be damaged or not "
                "a checkpoint (open_clip reads .safetensors, and .pt/.pth/.bin state dicts without pickled code)"
            ) from None
        raise BadInputError(f"open_clip could not build {source.spec}: {_first_lines(str(exc))}") from None
    except Exception as exc:
        if type(exc).__name__ in ("SafetensorError", "UnpicklingError"):
            raise IncompatibleFileError(
                f"cannot read checkpoint {pretrained}: {_first_lines(str(exc))}; it may be damaged, or a "
                "pickle with code in it (not loaded for safety); re-save it as .safetensors"
            ) from None
        raise
    model.eval()
    model.requires_grad_(False)
    return Loaded(model, preprocess, tokenizer, model_name, pretrained, sha)


def _first_lines(text: str, n: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    out = " ".join(lines[:n])
    return out if len(out) < 600 else out[:600] + "..."
