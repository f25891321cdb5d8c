"""Image data for ceir: one dataset interface, robust decoding, and the feature cache.

>>> from ceir_sdk.data import as_dataset
>>> ds = as_dataset("photos/", on_error="skip")      # doctest: +SKIP
>>> for item in ds: item.id, item.image, item.label   # doctest: +SKIP
>>> print(ds.report.summary())                        # doctest: +SKIP
"""

from __future__ import annotations

from ceir_sdk.data.dataset import (
    FolderDataset,
    ImageDataset,
    ImageItem,
    ImageRef,
    RefDataset,
    StreamDataset,
    TorchvisionDataset,
    WorldDataset,
    as_dataset,
    image_extensions,
    try_load,
)
from ceir_sdk.data.extract import EncodedImages, extract_features
from ceir_sdk.data.feature_cache import FeatureCache, default_cache_root
from ceir_sdk.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    LoadOptions,
    array_to_rgb,
    load_image_file,
    to_rgb,
)
from ceir_sdk.data.report import LoadReport, OnError, SkippedImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EncodedImages",
    "FeatureCache",
    "FolderDataset",
    "ImageDataset",
    "ImageItem",
    "ImageLoadError",
    "ImageRef",
    "LoadOptions",
    "LoadReport",
    "OnError",
    "RefDataset",
    "SkippedImage",
    "StreamDataset",
    "TorchvisionDataset",
    "WorldDataset",
    "array_to_rgb",
    "as_dataset",
    "default_cache_root",
    "extract_features",
    "image_extensions",
    "load_image_file",
    "to_rgb",
    "try_load",
]
