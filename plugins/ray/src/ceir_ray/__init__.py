"""ceir on Ray: embed large image collections into resumable parquet shards, index them shard by shard.

    from ceir_ray import embed_collection, build_index
    embed_collection("photos/", "shards/", bundle="bundle/")      # a rerun resumes
    build_index("shards/", "index/")                              # IVF-PQ for large collections
"""

from __future__ import annotations

from typing import Any

__all__ = ["EmbedReport", "IndexReport", "OnnxEmbedder", "ShardSet", "build_index", "embed_collection",
           "load_index", "plan_input"]

_EXPORTS = {
    "EmbedReport": "ceir_ray.embed",
    "embed_collection": "ceir_ray.embed",
    "OnnxEmbedder": "ceir_ray.embedders",
    "ShardSet": "ceir_ray.shards",
    "plan_input": "ceir_ray.plan",
    "IndexReport": "ceir_ray.index",
    "build_index": "ceir_ray.index",
    "load_index": "ceir_ray.index",
}


def __getattr__(name: str) -> Any:
    # Lazy: `ceir --help` must not import ray or faiss.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
