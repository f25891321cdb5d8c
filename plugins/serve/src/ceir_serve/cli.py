"""`ceir serve BUNDLE`: the HTTP service on uvicorn, or on Ray Serve with --ray."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from ceir_serve.settings import DEFAULT_TOKEN_ENV, LOOPBACK, ServeSettings

log = logging.getLogger("ceir_serve")


def settings_from(options: dict[str, Any]) -> ServeSettings:
    return ServeSettings(
        max_batch_size=options["max_batch_size"], max_wait_ms=options["max_wait_ms"],
        max_body_bytes=options["max_body_bytes"], max_items=options["max_items"], max_pixels=options["max_pixels"],
        request_timeout_s=options["request_timeout"], allow_writes=options["allow_writes"],
        token_env=options["token_env"], decode_workers=options["decode_workers"], model_name=options["model_name"],
        providers=options["providers"], precision=options["precision"], threads=options["threads"],
        allow_cpu_fallback=options["allow_cpu_fallback"], backend=options["backend"])


@click.command("serve")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--index", "index_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="A ConceptIndex built with this bundle: enables /v1/search (and /v1/items with --allow-writes).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default is reachable from this machine only.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--allow-writes", is_flag=True, help="Enable POST /v1/items and DELETE /v1/items/{id} (needs --index).")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(1, 4096),
              help="Most items run as one batch (1: no dynamic batching).")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0, 10_000),
              help="How long the first waiting item waits for others to join its batch.")
@click.option("--max-body-bytes", default=16 * 1024 * 1024, show_default=True, type=click.IntRange(1024))
@click.option("--max-items", default=64, show_default=True, type=click.IntRange(1),
              help="Most inputs (texts, images, items) in one request.")
@click.option("--max-pixels", default=None, type=click.IntRange(1),
              help="Largest image (width x height) decoded; bigger ones get 413 (default: the runtime's limit).")
@click.option("--request-timeout", default=30.0, show_default=True, type=click.FloatRange(0.001),
              help="Seconds before a request is answered 504.")
@click.option("--token-env", default=DEFAULT_TOKEN_ENV, show_default=True,
              help="Environment variable holding the bearer token; when it is set, every endpoint but /health, "
                   "/ready and /docs needs 'Authorization: Bearer <token>'.")
@click.option("--decode-workers", default=min(4, os.cpu_count() or 1), show_default=True, type=click.IntRange(1))
@click.option("--providers", default="auto", show_default=True,
              help="onnxruntime providers: auto, cpu, cuda, tensorrt. A GPU asked for and not obtained stops the "
                   "start unless --allow-cpu-fallback.")
@click.option("--allow-cpu-fallback", is_flag=True, help="Serve on the CPU when the GPU provider asked for is missing.")
@click.option("--precision", default="auto", show_default=True,
              help="Image graph: auto, fp32, bf16 (OpenVINO), fp16 or int8; auto: the `ceir tune` choice if recorded.")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", "onnxruntime", "openvino"]),
              help="Inference backend; auto: the `ceir tune` choice for this machine if recorded, else onnxruntime.")
@click.option("--threads", default=None, type=click.IntRange(1), help="onnxruntime intra-op threads.")
@click.option("--model-name", default=None, help="The model id clients send (default: the bundle folder's name).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
              help="Deploy on Ray Serve instead: --ray alone starts a local Ray instance, --ray ADDRESS joins a "
                   "cluster (e.g. auto or ray://head:10001).")
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(1), help="Ray Serve replicas.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve_command(bundle: str, index_dir: str | None, host: str, port: int, ray_address: str | None,
                  replicas: int, log_level: str, **options: Any) -> None:
    """Serve BUNDLE over HTTP: OpenAI-compatible /v1/embeddings, /v1/explain, /v1/search.

    Requests arriving together run as one batch (--max-batch-size, --max-wait-ms). /health,
    /ready, /metrics (Prometheus) and /docs (OpenAPI) come with it. See docs/serve.md.
    """
    settings = settings_from(options)
    if settings.allow_writes and index_dir is None:
        raise click.UsageError("--allow-writes needs --index DIR (the index the items go to)")
    token_set = bool(os.environ.get(settings.token_env))
    if host not in LOOPBACK and not token_set:
        click.echo(f"warning: binding {host} with no token: anyone who can reach port {port} can use this server"
                   f"{' and change the index' if settings.allow_writes else ''}. Set {settings.token_env} to require "
                   "a bearer token.", err=True)
    if ray_address is not None:
        from ceir_serve.ray_backend import run_on_ray

        run_on_ray(bundle, index_dir, settings, address=ray_address, replicas=replicas, host=host, port=port)
        return
    import uvicorn

    from ceir_serve.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(bundle, index_dir, settings)
    click.echo(f"serving {bundle} on http://{host}:{port} (docs at /docs; token "
               f"{'required' if token_set else 'not required'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
