"""The CEIR model: concept bottleneck + latent model on top of any backbone.

Names load on first use (PEP 562): ``ceir_sdk.model.cluster``, ``fileio``, ``presence`` and
``world_concepts`` need no torch, and importing them must not pull it in through this package
(a deployment installs no torch). ``CEIRModel``, the bottleneck and the explanations do need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ceir_sdk.model.bottleneck import BottleneckConfig, ConceptBottleneck, ConceptHead
    from ceir_sdk.model.ceir import CEIRModel, clean_concepts
    from ceir_sdk.model.cluster import ClusterResult, kmeans
    from ceir_sdk.model.config import FORMAT, FORMAT_VERSION, ModelConfig
    from ceir_sdk.model.explain import Explanation, integrated_gradients

#: public name -> the module that defines it
_WHERE = {
    "BottleneckConfig": "bottleneck", "ConceptBottleneck": "bottleneck", "ConceptHead": "bottleneck",
    "FORMAT": "config", "FORMAT_VERSION": "config", "ModelConfig": "config",
    "CEIRModel": "ceir", "clean_concepts": "ceir",
    "ClusterResult": "cluster", "kmeans": "cluster",
    "Explanation": "explain", "integrated_gradients": "explain",
}

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BottleneckConfig",
    "CEIRModel",
    "ClusterResult",
    "ConceptBottleneck",
    "ConceptHead",
    "Explanation",
    "ModelConfig",
    "clean_concepts",
    "integrated_gradients",
    "kmeans",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ceir_sdk.model' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ceir_sdk.model.{module}"), name)
