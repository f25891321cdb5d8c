"""Deterministic items for the index tests (a module of its own: conftest names collide)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CONCEPTS = ["striped", "water", "grass", "red fur", "snow", "feathers"]


def item_vectors(ids: np.ndarray, dim: int = 16, n_concepts: int = len(CONCEPTS)) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (latent, activations) of items from their ids alone, so any loaded
    index can be checked item by item against what it must hold."""
    ids = np.asarray(ids, dtype=np.float64)[:, None]
    acts = np.cos(ids * 0.37 + np.arange(n_concepts)[None, :] * 1.3) * 2.0
    lat = np.sin(ids * 0.11 + np.arange(dim)[None, :] * 0.7)
    return lat.astype(np.float32), acts.astype(np.float32)


def write_cli_inputs(folder: Path, ids: np.ndarray, metadata: list[dict[str, Any]]) -> tuple[Path, Path]:
    """The embeddings file and metadata JSONL that `ceir index build --embeddings --metadata` reads."""
    from safetensors.numpy import save_file

    lat, acts = item_vectors(ids)
    emb = folder / "emb.safetensors"
    save_file({"latent": lat, "concepts": acts, "ids": np.asarray(ids, np.int64)}, str(emb),
              metadata={"concepts": json.dumps([f"c{i}" for i in range(acts.shape[1])])})
    meta = folder / "meta.jsonl"
    meta.write_text("".join(json.dumps(m) + "\n" for m in metadata))
    return emb, meta
