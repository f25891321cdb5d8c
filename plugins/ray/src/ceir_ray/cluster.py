"""Connecting to Ray: an existing cluster by address, or a local one started for the run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module, initialised; shut down only a cluster this call started.

    ``address``: None starts a local cluster (or reuses one already initialised in this
    process); "auto" or "ray://host:10001" or "host:6379" joins an existing one.
    """
    import ray

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                  "log_to_driver": True}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def actor_resources(ray: Any, num_actors: int | None, num_gpus_per_actor: float | None,
                    cpus_per_actor: float = 1.0) -> tuple[int, float, float, str]:
    """(actors, cpus each, gpus each, onnxruntime providers) for this cluster.

    GPU actors when the cluster has GPUs (one actor per GPU unless told otherwise), CPU actors
    otherwise (one per CPU).
    """
    res = ray.cluster_resources()
    gpus = float(res.get("GPU", 0.0))
    if num_gpus_per_actor is None:
        num_gpus_per_actor = 1.0 if gpus >= 1 else 0.0
    if num_gpus_per_actor > 0:
        n = num_actors or max(1, int(gpus / num_gpus_per_actor))
        return n, cpus_per_actor, num_gpus_per_actor, "cuda"
    n = num_actors or max(1, int(float(res.get("CPU", 1.0)) // cpus_per_actor))
    return n, cpus_per_actor, 0.0, "cpu"
