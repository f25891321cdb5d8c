"""The CEIR model: concept bottleneck + latent model on top of any backbone."""

from ceir_sdk.model.bottleneck import BottleneckConfig, ConceptBottleneck, ConceptHead
from ceir_sdk.model.ceir import FORMAT, FORMAT_VERSION, CEIRModel, clean_concepts
from ceir_sdk.model.cluster import ClusterResult, kmeans
from ceir_sdk.model.explain import Explanation, integrated_gradients

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BottleneckConfig",
    "CEIRModel",
    "ClusterResult",
    "ConceptBottleneck",
    "ConceptHead",
    "Explanation",
    "clean_concepts",
    "integrated_gradients",
    "kmeans",
]
