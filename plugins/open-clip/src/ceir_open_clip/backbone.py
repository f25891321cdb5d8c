"""The open-clip backbone: any open_clip model as a :class:`ceir_sdk.contracts.Backbone`."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ceir_open_clip.loading import load
from ceir_open_clip.spec import ModelSource, parse_spec
from ceir_sdk.data.report import OnError
from ceir_sdk.errors import BadInputError
from ceir_sdk.plugin_bases import BackboneBase


def resolve_device(device: str | None) -> str:
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(
            f"device={device!r} was asked for but torch sees no CUDA device; pass device='cpu' "
            "(or leave device unset to pick CUDA when it is there)"
        )
    return device


class ImageTower(nn.Module):
    """pixels (B, 3, H, W) float32, preprocessed -> unnormalised image features (B, D)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(pixels)  # type: ignore[operator]


class TextTower(nn.Module):
    """tokens (B, context_length) int64 -> unnormalised text features (B, D)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)  # type: ignore[operator]


class OpenClipBackbone(BackboneBase):
    """Image and text encoders of an open_clip model, with batched, cached feature extraction
    (``encode``, ``encode_images``, ``encode_texts`` and the cache come from BackboneBase).

    Options: ``device`` (None picks CUDA when available), ``precision`` ("fp32", or "amp" for
    mixed precision; "amp" is the default on CUDA), ``seed`` (random-weight models),
    ``batch_size``, ``num_workers`` (decode threads), ``cache`` (None: the default folder,
    False: off, or a folder), ``on_error`` ("fail" or "skip"), ``max_pixels``, ``background``.
    """

    #: features are cached under ~/.cache/ceir/features unless cache=False (spec() names the weights)
    cache_by_default = True
    #: preprocess_config() describes open_clip's own transform, which torch runs whatever its values;
    #: one the ONNX runtime cannot follow (a non-zero fill_color) is refused at export, not at fit
    preprocess_checked = False

    def __init__(
        self,
        spec: str | None = None,
        *,
        device: str | None = None,
        precision: str | None = None,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int | None = None,
        cache: bool | str | Any = None,
        on_error: OnError = "fail",
        max_pixels: int | None = None,
        background: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, cache=cache, on_error=on_error,
                         max_pixels=max_pixels, background=background)
        self.source: ModelSource = parse_spec(spec)
        self.name = f"open-clip:{self.source.spec}"
        self.device = resolve_device(device)
        self.precision = precision or ("amp" if self.device.startswith("cuda") else "fp32")
        if self.precision not in ("fp32", "amp"):
            raise BadInputError(f"precision must be 'fp32' or 'amp', got {self.precision!r}")
        self.seed = int(seed)
        loaded = load(self.source, device=self.device, seed=self.seed)
        self.model: nn.Module = loaded.model
        self.preprocess = loaded.preprocess
        self.tokenizer = loaded.tokenizer
        self.model_name = loaded.model_name
        self.pretrained = loaded.pretrained
        self.weights_sha256 = loaded.weights_sha256
        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["a"]).to(self.device))
        self.embed_dim = int(probe.shape[-1])

    # -- description ---------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        import open_clip

        out: dict[str, Any] = {
            "name": self.name,
            "plugin": "open-clip",
            "kind": self.source.kind,
            "model": self.model_name,
            "pretrained": self.pretrained,
            "embed_dim": self.embed_dim,
            "preprocess": self.preprocess_config(),
            "tokenizer": {k: v for k, v in self.tokenizer_info().items() if k != "vocab_file"},
            "open_clip_version": open_clip.__version__,
        }
        if self.weights_sha256:
            out["weights_sha256"] = self.weights_sha256
        if self.source.kind == "world":
            # A model fitted on another version of the drawn world refuses to load (the spec is
            # compared at load) instead of giving quietly different numbers.
            from ceir_open_clip.world_model import world_version

            # (not "world_version": keys ending in _version name library versions, which the
            # load check leaves out)
            out["world"] = f"version {world_version()}"
        if self.source.kind == "random":
            out["seed"] = self.seed
            out["torch_version"] = torch.__version__
        return out

    def preprocess_config(self) -> dict[str, Any]:
        cfg = dict(getattr(self.model.visual, "preprocess_cfg", {}))
        size = cfg.get("size", 224)
        if isinstance(size, (tuple, list)):
            size = int(size[0]) if size[0] == size[1] else [int(s) for s in size]
        resize = cfg.get("resize_mode", "shortest")
        crop = {"shortest": "center", "longest": "center-or-pad", "squash": "none"}.get(resize, "center")
        return {
            "image_size": size,
            "resize": resize,
            "crop": crop,
            "interpolation": cfg.get("interpolation", "bicubic"),
            "mean": [float(x) for x in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))],
            "std": [float(x) for x in cfg.get("std", (0.26862954, 0.26130258, 0.27577711))],
            "fill_color": int(cfg.get("fill_color", 0)),
        }

    def tokenizer_info(self) -> dict[str, Any]:
        import open_clip
        from open_clip.tokenizer import SimpleTokenizer

        tok = self.tokenizer
        info: dict[str, Any] = {"context_length": int(getattr(tok, "context_length", 77))}
        if isinstance(tok, SimpleTokenizer):
            info.update(
                kind="clip-bpe",
                vocab_file=open_clip.tokenizer.default_bpe(),
                vocab_size=int(tok.vocab_size),
                sot_token_id=int(tok.sot_token_id),
                eot_token_id=int(tok.eot_token_id),
                clean=getattr(getattr(tok, "clean_fn", None), "__name__", "_clean_lower").removeprefix("_clean_"),
            )
        else:
            info.update(kind=type(tok).__name__, name=getattr(tok, "tokenizer_name", None))
        return info

    def torch_modules(self) -> dict[str, Any]:
        return {
            "image": ImageTower(self.model).eval(),
            "text": TextTower(self.model).eval(),
            "tokenize": self.tokenizer,
        }

    # -- encoding (BackboneBase runs these over datasets, batches and texts) --------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "amp" and self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def transform(self, image: Any) -> Any:
        """A decoded RGB image -> open_clip's preprocessed pixels (3, S, S)."""
        return self.preprocess(image)

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        x = torch.stack(inputs).to(self.device, non_blocking=True)
        with torch.inference_mode(), self._autocast():
            feats = self.model.encode_image(x)  # type: ignore[operator]
        return feats.float().cpu().numpy()

    def encode_text_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode(), self._autocast():
            feats = self.model.encode_text(tokens)  # type: ignore[operator]
        return feats.float().cpu().numpy()

    def cache_namespace(self) -> dict[str, Any]:
        spec = self.spec()
        volatile = {"open_clip_version"}
        if self.weights_sha256:
            volatile |= {"name", "pretrained"}  # the checksum names the weights; moving the file keeps hits
        return {
            "backbone": {k: v for k, v in spec.items() if k not in volatile},
            "precision": self.precision,
            "background": list(self.background or (255, 255, 255)),
            "cache_format": 1,
        }

    def __repr__(self) -> str:
        return f"OpenClipBackbone({self.name!r}, device={self.device!r}, embed_dim={self.embed_dim})"
