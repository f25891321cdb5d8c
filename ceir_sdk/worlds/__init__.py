"""Procedurally drawn worlds with known concepts (numpy + pillow only, no torch).

from ceir_sdk.worlds import World, DOMAINS
w = World("world10", image_size=32, seed=0)
s = w.sample(0, split="test")     # image, label, concepts, caption, families
w.oracle.class_concepts("ladybug")
"""

from ceir_sdk.worlds.dataset import WorldDataset
from ceir_sdk.worlds.domains import DOMAINS, ClassSpec, DomainSpec
from ceir_sdk.worlds.oracle import Oracle
from ceir_sdk.worlds.world import SPLIT_SIZES, SPLITS, World, WorldBatch, WorldSample

__all__ = [
    "DOMAINS",
    "SPLITS",
    "SPLIT_SIZES",
    "ClassSpec",
    "DomainSpec",
    "Oracle",
    "World",
    "WorldBatch",
    "WorldDataset",
    "WorldSample",
]
