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


def _world_checkpoint(name: str) -> tuple[str, str]:
    """Register the bundled world models' configs with open_clip; return (model name, checkpoint)."""
    try:
        from ceir_open_clip.world_model import checkpoint_path, register_with_open_clip
    except ImportError as exc:
        raise CeirError(
            f"the bundled {name} model is not available in this install ({exc}); "
            "reinstall ceir-open-clip, or name another model, e.g. open-clip:ViT-B-32/laion2b_s34b_b79k"
        ) from None
    register_with_open_clip()
    path = Path(checkpoint_path(name))
    if not path.is_file():
        raise CeirError(
            f"the {name} checkpoint {path} is missing; train it with the world-model training script "
            "(see plugins/open-clip/src/ceir_open_clip/world_model) or name another backbone"
        )
    return name, str(path)


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


#: The values of the ``device`` option, as errors list them.
DEVICE_VALUES = ("'cpu', 'cuda' or 'cuda:N' (N = a GPU's index), 'mps' (Apple GPUs), or 'auto' / unset "
                 "(CUDA when torch sees a GPU, else the CPU)")


def check_device(device: str) -> None:
    """Refuse a device this backbone cannot run on, naming the option and its values. Checked
    before open_clip's loader, whose failure on a bad device reads as a damaged checkpoint."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise BadInputError(f"backbone option device={device!r} is not a device; use {DEVICE_VALUES}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise BadInputError(f"backbone option device={device!r}: torch sees no CUDA device; use {DEVICE_VALUES}")
        if parsed.index is not None and parsed.index >= count:
            raise BadInputError(f"backbone option device={device!r}: torch sees {count} CUDA device"
                                f"{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1}); use {DEVICE_VALUES}")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise BadInputError(f"backbone option device={device!r}: torch has no MPS (Apple GPU) support here; "
                                f"use {DEVICE_VALUES}")
    elif parsed.type != "cpu":
        raise BadInputError(f"backbone option device={device!r}: the open-clip backbone runs on CPU, CUDA or MPS "
                            f"only; use {DEVICE_VALUES}")


def load(source: ModelSource, *, device: str, seed: int = 0) -> Loaded:
    import open_clip
    import torch

    check_device(device)
    model_name, pretrained, sha = source.model_name, source.pretrained, None
    if source.kind == "world":
        model_name, pretrained = _world_checkpoint(source.model_name)
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
    except CeirError:
        raise
    except Exception as exc:
        raise _explain(source, model_name, pretrained, exc) from None
    model.eval()
    model.requires_grad_(False)
    return Loaded(model, preprocess, tokenizer, model_name, pretrained, sha)


def _explain(source: ModelSource, model_name: str, pretrained: str | None, exc: Exception) -> CeirError:
    """Turn an open_clip loading failure into an error naming the cause and the way out."""
    text = _first_lines(str(exc)) or type(exc).__name__
    if source.kind in ("world", "checkpoint"):
        mismatch = isinstance(exc, (AssertionError, KeyError)) or any(
            word in text for word in ("state_dict", "size mismatch", "Missing key", "Unexpected key", "changed")
        )
        if mismatch:
            return IncompatibleFileError(
                f"checkpoint {pretrained} does not fit open_clip model {model_name!r} ({text}); "
                "check that the model name matches the architecture the checkpoint was trained with"
            )
        return IncompatibleFileError(
            f"cannot read checkpoint {pretrained} ({type(exc).__name__}: {text}); it may be damaged, or a "
            "pickle with code in it (never loaded, for safety); re-save its state dict as .safetensors"
        )
    if source.kind in ("tag", "hf-hub") and isinstance(exc, (RuntimeError, OSError)):
        return CeirError(
            f"could not fetch weights for open-clip:{source.spec} ({text}). Without network access (or "
            "with HF_HUB_OFFLINE=1) download them elsewhere and pass the file: "
            f"open-clip:{model_name.removeprefix('hf-hub:')}@/path/to/open_clip_model.safetensors"
        )
    return BadInputError(f"open_clip could not build {source.spec} ({type(exc).__name__}: {text})")


def _first_lines(text: str, n: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    out = " ".join(lines[:n])
    return out if len(out) < 600 else out[:600] + "..."
