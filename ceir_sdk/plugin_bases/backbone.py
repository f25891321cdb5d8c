"""``BackboneBase``: what every backbone needs besides its model, written once.

A plugin author subclasses it and writes the model part only::

    class MyBackbone(BackboneBase):
        name = "my-net"
        embed_dim = 256

        def preprocess_config(self):            # checked: unknown keys or values are refused
            return {"image_size": 64, "mean": [0.5] * 3, "std": [0.5] * 3}

        def transform(self, image):             # a decoded RGB PIL image -> model input
            ...
        def encode_batch(self, inputs):         # a list of transform() results -> (B, embed_dim)
            ...
        def encode_text_batch(self, texts):     # a list of str -> (B, embed_dim)
            ...
        def spec(self):
            return {"name": self.name, ...}

and gets the rest of the :class:`ceir_sdk.contracts.Backbone` contract from the base:
``encode_images`` on every input the data layer reads (folders, paths, PIL images, arrays,
torchvision-style datasets, worlds), ``encode`` with ``on_error`` skip/fail, ``max_pixels``,
batching, decoding in worker threads, a progress bar and the feature cache, and ``encode_texts``
with its input checks and batching. Outputs are checked: a wrong width or row count names the
backbone instead of failing later in the bottleneck.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ceir_sdk.errors import BadInputError, PluginError
from ceir_sdk.plugin_bases.preprocess import check_preprocess_config

if TYPE_CHECKING:  # numpy is imported where arrays are made: `import ceir_sdk` stays cheap
    import numpy as np

#: the keyword options BackboneBase.__init__ takes (declare them with your own when you register)
BASE_OPTIONS = ("batch_size", "num_workers", "cache", "on_error", "max_pixels", "background")


def refuse_policies_without_encode(backbone: Any, *, on_error: str = "fail", max_pixels: int | None = None) -> None:
    """A backbone with only the contract's required members (no ``encode``) cannot skip
    unreadable images or apply a pixel limit: asked for either, say so instead of ignoring it."""
    if callable(getattr(backbone, "encode", None)):
        return
    name = getattr(backbone, "name", type(backbone).__name__)
    how = "its plugin can subclass ceir_sdk.BackboneBase to get one, see docs/plugins.md"
    if on_error != "fail":
        raise BadInputError(f"backbone {name!r} cannot skip unreadable images (it has no encode(); {how}); "
                            "remove them, or leave out --on-error skip")
    if max_pixels is not None:
        raise BadInputError(f"backbone {name!r} cannot apply max_pixels (it has no encode(); {how}); "
                            "leave out --max-pixels, or check the images' sizes yourself")


def _checked_preprocess(method: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    @functools.wraps(method)
    def preprocess_config(self: Any) -> dict[str, Any]:
        cfg = method(self)
        if not self.preprocess_checked:
            return cfg
        return check_preprocess_config(cfg, where=f"backbone {self.name!r}: preprocess_config()")

    preprocess_config.__ceir_checked__ = True  # type: ignore[attr-defined]
    return preprocess_config


class BackboneBase:
    """Base class of an image-and-text backbone (see the module docstring and docs/plugins.md).

    Subclasses set ``name`` and ``embed_dim`` and implement ``encode_batch``,
    ``encode_text_batch``, ``preprocess_config`` and ``spec``; ``transform`` (default: the decoded
    RGB PIL image as it is) and ``torch_modules`` (for ONNX export) are optional.
    """

    name: str = ""
    embed_dim: int = 0
    #: images per encode_batch call unless the caller says otherwise
    default_batch_size: int = 64
    #: texts per encode_text_batch call
    text_batch_size: int = 256
    #: whether features are cached on disk by default (cache=None); the cache key is the backbone's
    #: spec(), so turn it on only when spec() names everything that decides the weights
    cache_by_default: bool = False
    #: whether every preprocess_config() call is checked (a value the ONNX runtime cannot follow is
    #: refused where it is declared). False only for preprocessing that comes from elsewhere and is
    #: valid in torch where the runtime cannot follow it (open_clip's own configs); export checks anyway
    preprocess_checked: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Every preprocess_config() a subclass defines is checked when called (export, spec, cache key),
        # so a value the runtime cannot follow is refused at its source.
        own = cls.__dict__.get("preprocess_config")
        if callable(own) and not getattr(own, "__ceir_checked__", False):
            cls.preprocess_config = _checked_preprocess(own)  # type: ignore[method-assign,assignment]

    def __init__(
        self,
        *,
        batch_size: int | None = None,
        num_workers: int | None = None,
        cache: Any = None,
        on_error: str = "fail",
        max_pixels: int | None = None,
        background: tuple[int, int, int] | None = None,
    ) -> None:
        from ceir_sdk.data.report import check_on_error

        self.batch_size = int(batch_size or self.default_batch_size)
        if self.batch_size <= 0:
            raise BadInputError(f"batch_size must be positive, got {batch_size}")
        self.num_workers = num_workers
        self.on_error = check_on_error(on_error)
        self.max_pixels = max_pixels
        self.background = background
        self._cache_setting = cache
        self._cache: Any = None

    # -- what the author writes ----------------------------------------------------------------
    def transform(self, image: Any) -> Any:
        """One decoded image (an RGB ``PIL.Image.Image``, EXIF-rotated, alpha on white) -> the input
        ``encode_batch`` takes. Runs in worker threads, ahead of the model. Default: the image."""
        return image

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        """``transform()`` results -> float32 (len(inputs), embed_dim) unnormalised image features."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode_batch(inputs)")

    def encode_text_batch(self, texts: list[str]) -> np.ndarray:
        """Texts, used as given -> float32 (len(texts), embed_dim) unnormalised text features."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode_text_batch(texts)")

    def preprocess_config(self) -> dict[str, Any]:
        """The preprocessing ``transform`` does, as data (docs/plugins.md); ONNX export replays it."""
        raise NotImplementedError(f"{type(self).__name__} must implement preprocess_config()")

    def spec(self) -> dict[str, Any]:
        """JSON: ``"name"`` (what a user resolves) and whatever decides the weights (seed, checksum)."""
        raise NotImplementedError(f"{type(self).__name__} must implement spec()")

    def torch_modules(self) -> dict[str, Any]:
        """For ONNX export: ``{"image": module(pixels (B, 3, S, S) float32, preprocessed as
        preprocess_config() says) -> features (B, embed_dim)}``, plus ``"text"`` for a CLIP-BPE text
        tower. Default: none (the backbone fits and encodes, but does not export)."""
        return {}

    def cache_namespace(self) -> dict[str, Any]:
        """What the cached features depend on: the spec less library versions, plus the decoding
        background. Override to leave out keys that do not change the numbers (a file name)."""
        spec = {k: v for k, v in self.spec().items() if not k.endswith("_version")}
        return {"backbone": spec, "background": list(self.background or (255, 255, 255)), "cache_format": 1}

    # -- what the base provides ----------------------------------------------------------------
    def feature_cache(self) -> Any:
        """The :class:`ceir_sdk.data.FeatureCache` this backbone reads and fills (None when off)."""
        from ceir_sdk.data import FeatureCache, default_cache_root

        if self._cache is not None:
            return self._cache
        setting = self._cache_setting
        if isinstance(setting, FeatureCache):
            self._cache = setting
            return setting
        if setting is None:
            setting = self.cache_by_default
        if setting is False:
            return None
        root = default_cache_root() if setting is True else setting
        if root is None:  # $CEIR_FEATURE_CACHE=off
            return None
        self._cache = FeatureCache(root, self.cache_namespace(), int(self.embed_dim))
        return self._cache

    def _checked_batch(self, inputs: list[Any]) -> np.ndarray:
        import numpy as np

        feats = np.asarray(self.encode_batch(inputs), dtype=np.float32)
        if feats.shape != (len(inputs), int(self.embed_dim)):
            raise PluginError(
                f"backbone {self.name!r}: encode_batch() returned shape {feats.shape} for {len(inputs)} images, "
                f"but must return ({len(inputs)}, embed_dim={self.embed_dim}); the backbone breaks its contract")
        return feats

    def encode(
        self,
        images: Any,
        *,
        batch_size: int | None = None,
        progress: bool = True,
        on_error: str | None = None,
        cache: bool | None = None,
        **dataset_options: Any,
    ) -> Any:
        """Features plus ids, labels, paths and a load report (:class:`ceir_sdk.data.EncodedImages`).

        ``images``: anything :func:`ceir_sdk.data.as_dataset` takes; ``on_error="skip"`` drops images
        that cannot be read (and reports them), ``max_pixels`` refuses larger ones, other keyword
        arguments go to ``as_dataset``."""
        from ceir_sdk.data import as_dataset, extract_features
        from ceir_sdk.data.report import check_on_error

        dataset = as_dataset(
            images,
            on_error=check_on_error(on_error or self.on_error),
            max_pixels=dataset_options.pop("max_pixels", self.max_pixels),
            background=dataset_options.pop("background", self.background),
            **dataset_options,
        )
        return extract_features(
            dataset,
            transform=self.transform,
            encode_batch=self._checked_batch,
            dim=int(self.embed_dim),
            cache=None if cache is False else self.feature_cache(),
            batch_size=batch_size or self.batch_size,
            num_workers=self.num_workers,
            progress=progress,
            desc=f"encoding images ({self.name})",
        )

    def encode_images(
        self, images: Any, *, batch_size: int | None = None, progress: bool = True, **options: Any
    ) -> np.ndarray:
        """float32 (N, embed_dim) unnormalised image features, one row per input image."""
        import numpy as np

        return np.asarray(self.encode(images, batch_size=batch_size, progress=progress, **options).features)

    def encode_texts(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """float32 (N, embed_dim) unnormalised text features; texts are used as given."""
        import numpy as np

        if isinstance(texts, str):
            raise BadInputError("encode_texts takes a list of texts; wrap a single text as [text]")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise BadInputError(f"encode_texts needs strings; items {bad[:5]} are {type(texts[bad[0]]).__name__}")
        step = int(batch_size or self.text_batch_size)
        out = [np.zeros((0, int(self.embed_dim)), np.float32)]
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            feats = np.asarray(self.encode_text_batch(chunk), dtype=np.float32)
            if feats.shape != (len(chunk), int(self.embed_dim)):
                raise PluginError(
                    f"backbone {self.name!r}: encode_text_batch() returned shape {feats.shape} for {len(chunk)} "
                    f"texts, but must return ({len(chunk)}, embed_dim={self.embed_dim})")
            out.append(feats)
        return np.concatenate(out).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, embed_dim={self.embed_dim})"
