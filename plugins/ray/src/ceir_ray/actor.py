"""The Ray Data callable class: read a unit of rows, decode, embed; one session per actor."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ceir_ray.embedders import EmbedderFactory, decode
from ceir_ray.plan import read_unit


class EmbedActor:
    """``map_batches`` callable: a batch of JSON read units -> rows with latents and concepts.

    An image that cannot be read or decoded becomes a row with an ``error`` and NaN vectors,
    so one bad file neither stops a million-image run nor silently drops a row.
    """

    def __init__(self, factory: EmbedderFactory) -> None:
        self.embed = factory()
        self.dims: tuple[int, int] | None = None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows: list[np.ndarray] = []
        latents: list[np.ndarray] = []
        concepts: list[np.ndarray] = []
        errors: list[str] = []
        for text in batch["unit"]:
            row0, items = read_unit(json.loads(str(text)))
            images, ok, errs = [], [], [""] * len(items)
            for i, item in enumerate(items):
                try:
                    images.append(decode(item))
                    ok.append(i)
                except Exception as exc:  # any decoder failure is data, recorded per row
                    errs[i] = f"{type(exc).__name__}: {exc}"[:500]
            if images:
                c, z = self.embed(images)
                self.dims = (c.shape[1], z.shape[1])
            if self.dims is None:  # a unit with no readable image before any success
                c0, z0 = self.embed([decode_blank()])
                self.dims = (c0.shape[1], z0.shape[1])
            lat = np.full((len(items), self.dims[1]), np.nan, np.float32)
            con = np.full((len(items), self.dims[0]), np.nan, np.float32)
            if images:
                lat[ok], con[ok] = z, c
            rows.append(np.arange(row0, row0 + len(items), dtype=np.int64))
            latents.append(lat)
            concepts.append(con)
            errors.extend(errs)
        return {"row": np.concatenate(rows), "latent": np.concatenate(latents),
                "concepts": np.concatenate(concepts), "error": np.array(errors, dtype=object)}


def actor_class(factory: EmbedderFactory) -> type[EmbedActor]:
    """An EmbedActor subclass carrying ``factory`` in its definition, not as a constructor argument.

    Ray warns that constructor arguments kept in the object store may be gone when it restarts
    a crashed actor; a class pickled by value restarts with everything it needs.
    """

    class BoundEmbedActor(EmbedActor):
        def __init__(self) -> None:
            super().__init__(factory)

    return BoundEmbedActor


def decode_blank() -> Any:
    from PIL import Image

    return Image.new("RGB", (8, 8))
