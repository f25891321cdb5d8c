"""A map-style dataset over one split of a world, shaped like a torchvision dataset.

``ds[i]`` is ``(PIL image, label)`` (after ``transform``), ``len(ds)`` the split size, so code
written for image folders and torchvision datasets takes a world unchanged. No torch import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from ceir_sdk.worlds.world import World, WorldSample


class WorldDataset:
    def __init__(
        self,
        world: World,
        split: str = "train",
        length: int | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.world = world
        self.split = split
        self.length = world.split_size(split) if length is None else length
        self.transform = transform
        self.classes = list(world.class_names)

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> WorldSample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.world.sample(index, self.split)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        s = self.sample(index)
        image: Any = Image.fromarray(s.image)
        if self.transform is not None:
            image = self.transform(image)
        return image, s.label
