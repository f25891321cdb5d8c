"""Ray Serve: the same app in every replica, batching through ``serve.batch``, Ray's proxy in front.

    ceir serve BUNDLE --ray [ADDRESS] --replicas N

Each replica loads the bundle (and index) itself and builds the app at replica start
(``__serve_build_asgi_app__``), so nothing heavy is pickled across the cluster. Ray's HTTP
proxy balances requests over the replicas; there is no balancer of ours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceir_serve.settings import ServeSettings

log = logging.getLogger("ceir_serve")
APP_NAME = "ceir"


def ray_submitters(engine: Any) -> tuple[Any, Any]:
    """(image, text) submit functions batched by ``serve.batch`` (called inside a replica)."""
    from ray import serve

    s = engine.settings
    wait = s.max_wait_ms / 1000

    @serve.batch(max_batch_size=s.max_batch_size, batch_wait_timeout_s=wait)
    async def images(pixels: Sequence[np.ndarray]) -> list[Any]:
        engine.metrics.on_batch("image", len(pixels))
        return await asyncio.get_running_loop().run_in_executor(engine.infer_pool, engine.run_images, list(pixels))

    @serve.batch(max_batch_size=s.max_batch_size, batch_wait_timeout_s=wait)
    async def texts(items: Sequence[str]) -> list[Any]:
        engine.metrics.on_batch("text", len(items))
        return await asyncio.get_running_loop().run_in_executor(engine.infer_pool, engine.run_texts, list(items))

    return images, texts


class CeirReplica:
    """One Ray Serve replica: loads the runtime and index, then serves the app of create_app."""

    def __init__(self, bundle: str, index_dir: str | None, settings: dict[str, Any]) -> None:
        from ceir_serve.engine import Engine

        self.engine = Engine.load(bundle, ServeSettings(**settings), index_dir)

    def __serve_build_asgi_app__(self) -> Any:
        from ceir_serve.app import build_app

        return build_app(self.engine, batch_backend="ray")


def deployment(bundle: str | Path, index_dir: str | Path | None, settings: ServeSettings, *, replicas: int,
               replica_cpus: float = 1.0) -> Any:
    """The bound Ray Serve application (pass it to ``serve.run``)."""
    from ray import serve

    cls = serve.ingress()(CeirReplica)
    dep: Any = serve.deployment(cls, name="ceir", num_replicas=replicas, ray_actor_options={"num_cpus": replica_cpus},
                           max_ongoing_requests=max(64, 2 * settings.max_batch_size))
    return dep.bind(str(Path(bundle).resolve()), None if index_dir is None else str(Path(index_dir).resolve()),
                    dataclasses.asdict(settings))


def start_on_ray(bundle: str | Path, index_dir: str | Path | None, settings: ServeSettings, *, address: str,
                 replicas: int, host: str, port: int, replica_cpus: float = 1.0,
                 num_cpus: int | None = None) -> float:
    """Start (or join) Ray, deploy, wait until every replica is ready; returns the seconds it took."""
    import ray
    from ray import serve

    if settings.allow_writes and replicas > 1:
        log.warning("several replicas write to one index: each save that finds another's version reloads and "
                    "re-applies (nothing is lost), but a replica's searches see other replicas' items only after "
                    "its next write")
    started = time.perf_counter()
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(deployment(bundle, index_dir, settings, replicas=replicas, replica_cpus=replica_cpus),
              name=APP_NAME, route_prefix="/", blocking=False)
    return time.perf_counter() - started


def run_on_ray(bundle: str | Path, index_dir: str | Path | None, settings: ServeSettings, *, address: str,
               replicas: int, host: str, port: int) -> None:
    """`ceir serve --ray`: deploy, report, and keep serving until Ctrl-C."""
    import click

    try:
        from ray import serve
    except ImportError as exc:  # no ray, or ray without its serve extra
        raise click.ClickException(f"--ray needs Ray Serve: pip install 'ceir-serve[ray]' ({exc})") from exc
    seconds = start_on_ray(bundle, index_dir, settings, address=address, replicas=replicas, host=host, port=port)
    click.echo(f"Ray Serve: {replicas} replica(s) of {bundle} ready in {seconds:.1f} s on http://{host}:{port} "
               "(Ctrl-C stops them)", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
