"""ceir-sdk: image representations a person can read (CEIR).

Heavy dependencies (torch, open_clip, onnxruntime, vendor SDKs) are imported lazily,
so importing this package is cheap.
"""

from __future__ import annotations

from ceir_sdk._version import __version__
from ceir_sdk.errors import (
    BadInputError,
    CeirError,
    DuplicateNameError,
    IncompatibleFileError,
    PluginLoadError,
    UnknownNameError,
)
from ceir_sdk.hookspecs import hookimpl
from ceir_sdk.plugin_bases import BackboneBase, ConceptSourceBase
from ceir_sdk.plugins import (
    get_backbone,
    get_concept_source,
    get_exporter,
    get_host,
    get_latent_model,
)

__all__ = [
    "BackboneBase",
    "BadInputError",
    "CeirError",
    "ConceptSourceBase",
    "DuplicateNameError",
    "IncompatibleFileError",
    "PluginLoadError",
    "UnknownNameError",
    "__version__",
    "get_backbone",
    "get_concept_source",
    "get_exporter",
    "get_host",
    "get_latent_model",
    "hookimpl",
]
