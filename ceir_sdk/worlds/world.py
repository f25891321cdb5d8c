"""The world generator: deterministic, streamed samples of a domain.

Sample ``i`` of a split is a pure function of (seed, domain, split, i): its RNG comes from a
numpy SeedSequence keyed on those, so it is the same whatever the batch size or start, and the
splits are separate random streams. Labels are balanced in blocks of one of each fine class.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ceir_sdk.worlds.captions import make_caption
from ceir_sdk.worlds.domains import DOMAINS, ClassSpec, DomainSpec
from ceir_sdk.worlds.nuisance import apply_nuisances, draw_nuisances
from ceir_sdk.worlds.oracle import Oracle
from ceir_sdk.worlds.render import IMAGE_SIZES, render
from ceir_sdk.worlds.vocabulary import FAMILY_VALUES, SINGLE_FAMILIES

SPLITS: Final[dict[str, int]] = {"train": 0, "val": 1, "test": 2}
# Nominal split sizes (CIFAR-like); samples beyond them exist but are not part of the split.
SPLIT_SIZES: Final[dict[str, int]] = {"train": 50_000, "val": 10_000, "test": 10_000}
# How many things around an image has: none, one or two.
AROUND_COUNT_P: Final[tuple[float, float, float]] = (0.15, 0.5, 0.35)


@dataclass(frozen=True)
class WorldSample:
    image: NDArray[np.uint8]  # (H, W, 3)
    label: int  # coarse label for world100_20, class index otherwise
    class_name: str  # name of ``label``
    concepts: frozenset[str]
    caption: str
    families: dict[str, str | tuple[str, ...]]  # family -> value (tuple for around/superclass)
    fine_label: int = -1
    fine_name: str = ""
    index: int = -1
    split: str = "train"
    # How the picture was made (style, lighting, camera, overlay, weather): never a concept.
    nuisances: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorldBatch:
    images: NDArray[np.uint8]  # (B, H, W, 3)
    labels: NDArray[np.int64]  # (B,)
    concepts: list[frozenset[str]]
    captions: list[str]
    indices: NDArray[np.int64]  # (B,)
    fine_labels: NDArray[np.int64]  # (B,)
    families: list[dict[str, str | tuple[str, ...]]]
    nuisances: list[dict[str, str]] = field(default_factory=list)


class World:
    """A domain of the drawn world at one image size and seed."""

    def __init__(self, name: str, image_size: int = 32, seed: int = 0) -> None:
        if name not in DOMAINS:
            raise KeyError(f"unknown world {name!r}; known: {sorted(DOMAINS)}")
        if image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
        self.name = name
        self.image_size = image_size
        self.seed = seed
        self.domain: DomainSpec = DOMAINS[name]
        self.oracle = Oracle(self.domain)
        self.fine_names: list[str] = self.domain.fine_names
        self.class_names: list[str] = self.domain.label_names
        self.coarse_names: list[str] | None = list(self.domain.coarse) if self.domain.coarse is not None else None
        coarse_of = {f: c for c, fs in (self.domain.coarse or {}).items() for f in fs}
        self._label_of_fine = np.array(
            [self.class_names.index(coarse_of.get(f, f)) for f in self.fine_names],
            dtype=np.int64,
        )
        self._domain_key = zlib.crc32(name.encode())

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split_size(self, split: str) -> int:
        return SPLIT_SIZES[_check_split(split)]

    def __repr__(self) -> str:
        return f"World({self.name!r}, image_size={self.image_size}, seed={self.seed})"

    # --- sampling -------------------------------------------------------------------------

    def _fine_label(self, split_key: int, i: int) -> int:
        k = len(self.fine_names)
        perm = _block_permutation(self.seed, self._domain_key, split_key, i // k, k)
        return int(perm[i % k])

    def sample(self, i: int, split: str = "train") -> WorldSample:
        split_key = SPLITS[_check_split(split)]
        if i < 0:
            raise IndexError(f"sample index must be >= 0, got {i}")
        fine = self._fine_label(split_key, i)
        spec = self.domain.classes[fine]
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self._domain_key, split_key, 0, i)))
        fam = _draw_families(spec, self.domain.noise, rng)
        around = fam["around"]
        assert isinstance(around, tuple)
        image = render(
            str(fam["shape"]),
            str(fam["colour"]),
            str(fam["pattern"]),
            str(fam["size"]),
            str(fam["scene"]),
            around,
            self.image_size,
            rng,
        )
        # Nuisances come from a stream of their own: independent of the class and the concepts,
        # and the concept values and drawing above are unchanged by them.
        nuisance_rng = self._nuisance_rng(split_key, i)
        nuisances = draw_nuisances(nuisance_rng)
        image = apply_nuisances(image, nuisances, nuisance_rng)
        caption = make_caption(fam, spec.name, rng, nuisances)
        label = int(self._label_of_fine[fine])
        concepts = frozenset(c for v in fam.values() for c in (v if isinstance(v, tuple) else (v,)))
        return WorldSample(
            image=image,
            label=label,
            class_name=self.class_names[label],
            concepts=concepts,
            caption=caption,
            families=fam,
            fine_label=fine,
            fine_name=spec.name,
            index=i,
            split=split,
            nuisances=nuisances,
        )

    def _nuisance_rng(self, split_key: int, i: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self._domain_key, split_key, 2, i)))

    def nuisances(self, i: int, split: str = "train") -> dict[str, str]:
        """Sample ``i``'s nuisance values alone (what ``sample(i).nuisances`` holds), without drawing it."""
        if i < 0:
            raise IndexError(f"sample index must be >= 0, got {i}")
        return draw_nuisances(self._nuisance_rng(SPLITS[_check_split(split)], i))

    def fine_label(self, i: int, split: str = "train") -> int:
        """Sample ``i``'s fine class index, without drawing it."""
        return self._fine_label(SPLITS[_check_split(split)], i)

    def batches(self, n: int, split: str = "train", batch_size: int = 512, start: int = 0) -> Iterator[WorldBatch]:
        """Samples ``start .. start+n-1`` of ``split`` in batches; only one batch in memory."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        for lo in range(start, start + n, batch_size):
            hi = min(lo + batch_size, start + n)
            samples = [self.sample(i, split) for i in range(lo, hi)]
            yield WorldBatch(
                images=np.stack([s.image for s in samples]),
                labels=np.array([s.label for s in samples], dtype=np.int64),
                concepts=[s.concepts for s in samples],
                captions=[s.caption for s in samples],
                indices=np.arange(lo, hi, dtype=np.int64),
                fine_labels=np.array([s.fine_label for s in samples], dtype=np.int64),
                families=[s.families for s in samples],
                nuisances=[s.nuisances for s in samples],
            )


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return split


@lru_cache(maxsize=64)
def _block_permutation(seed: int, domain_key: int, split_key: int, block: int, k: int) -> NDArray[np.int64]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(domain_key, split_key, 1, block)))
    return rng.permutation(k).astype(np.int64)


def _family_probs(values: tuple[str, ...], prefs: dict[str, float], noise: float) -> NDArray[np.float64]:
    p = np.full(len(values), noise / len(values))
    total = sum(prefs.values())
    for value, weight in prefs.items():
        p[values.index(value)] += (1.0 - noise) * weight / total
    return p


def _draw_families(
    spec: ClassSpec, noise: dict[str, float], rng: np.random.Generator
) -> dict[str, str | tuple[str, ...]]:
    fam: dict[str, str | tuple[str, ...]] = {}
    for family in SINGLE_FAMILIES:
        values = FAMILY_VALUES[family]
        p = _family_probs(values, spec.prefs(family), noise[family])
        fam[family] = values[int(rng.choice(len(values), p=p))]
    values = FAMILY_VALUES["around"]
    p = _family_probs(values, spec.around, noise["around"])
    count = int(rng.choice(3, p=AROUND_COUNT_P))
    fam["around"] = tuple(values[int(j)] for j in rng.choice(len(values), count, replace=False, p=p))
    fam["superclass"] = spec.superclasses
    return fam
