"""Synthetic shard folders (clustered random vectors) for index tests and the scale benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ceir_ray.shards import ShardSet, shard_table


def write_synthetic_shards(out: str | Path, n: int, dim: int = 128, *, shard_size: int = 100_000,
                           clusters: int = 256, dtype: str = "float16", seed: int = 0) -> ShardSet:
    """``n`` vectors around ``clusters`` centres, written shard by shard (float16 halves the disk)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * 3
    shards = ShardSet.open_for_writing(out, fingerprint=f"synthetic-{n}-{dim}-{seed}", n_rows=n,
                                       shard_size=shard_size, info={"synthetic": True})
    for s in shards.pending():
        start = s * shard_size
        m = shards.expected_rows(s)
        x = centres[rng.integers(0, clusters, m)] + rng.standard_normal((m, dim), dtype=np.float32)
        rows = np.arange(start, start + m)
        ids = pa.array([f"v{r}" for r in rows], pa.string())
        shards.write_shard(s, shard_table(rows, ids, x.astype(dtype), None))
    return shards
