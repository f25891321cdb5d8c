"""Filling a ConceptIndex from shards: train on the first sample, then add shard by shard.

Memory stays near one training sample plus one shard, however large the collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ceir_sdk.index.results import Shard
from ceir_sdk.index.vectors import train_sample_size

if TYPE_CHECKING:
    from ceir_sdk.index.concept_index import ConceptIndex


def fill_from_shards(index: ConceptIndex, shards: Iterable[Shard | Mapping[str, Any]], expected_size: int, *,
                     tune: bool, target_recall: float, seed: int, progress: bool) -> ConceptIndex:
    """Add every shard to ``index``, training it first (on buffered shards) if it is untrained;
    then tune the search breadth and fit the presence calibration."""
    from tqdm.auto import tqdm

    need = max(1, train_sample_size(index.factory or "", expected_size))
    pending: list[Shard] = []
    buffered = 0
    with tqdm(total=expected_size, desc="index add", unit="vec", disable=not progress) as bar:
        for raw in shards:
            shard = raw if isinstance(raw, Shard) else Shard(**dict(raw))
            if not index.is_trained:
                pending.append(shard)
                buffered += len(shard.latents)
                if buffered < need:
                    continue
                index.train(np.concatenate([np.asarray(s.latents, np.float32) for s in pending]),
                            seed=seed, expected_size=expected_size)
                todo, pending = pending, []
            else:
                todo = [shard]
            for s in todo:
                index.add(s.latents, s.activations, ids=s.ids, metadata=s.metadata)
                bar.update(len(s.latents))
        if pending:  # fewer vectors than a full training sample: train on what there is
            index.train(np.concatenate([np.asarray(s.latents, np.float32) for s in pending]),
                        seed=seed, expected_size=expected_size)
            for s in pending:
                index.add(s.latents, s.activations, ids=s.ids, metadata=s.metadata)
                bar.update(len(s.latents))
    if tune:
        index.tune(target_recall=target_recall, seed=seed)
    index._calibrate_if_possible()
    return index
