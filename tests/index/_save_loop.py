"""Child process for the crash test: mutate and save an index in a loop until killed.

Items are derived from their ids (conftest.item_vectors), so the parent can check any
version it loads item by item. Prints each completed generation, flushed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from index_helpers import item_vectors

from ceir_sdk.errors import IncompatibleFileError
from ceir_sdk.index import ConceptIndex


def main(root: str, seed: int) -> None:
    try:
        idx = ConceptIndex.load(root, verify_checksums=False)
    except IncompatibleFileError:
        ids = np.arange(4000)
        lat, acts = item_vectors(ids)
        idx = ConceptIndex.build(lat, acts, [f"c{i}" for i in range(acts.shape[1])], ids=ids,
                                 metadata=[{"key": f"k{i}"} for i in ids], progress=False)
    rng = np.random.default_rng(seed)
    print("ready", flush=True)
    while True:
        start = int(idx.ids.max()) + 1
        ids = np.arange(start, start + int(rng.integers(50, 300)))
        lat, acts = item_vectors(ids)
        idx.add(lat, acts, ids=ids, metadata=[{"key": f"k{i}"} for i in ids])
        idx.remove(rng.choice(idx.ids, size=int(rng.integers(10, 100)), replace=False))
        idx.save(root)
        print(f"saved {idx.generation}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
