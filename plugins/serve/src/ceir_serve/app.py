"""The FastAPI app: routes, error answers, limits, authentication and metrics.

    app = create_app("bundle/", index="index/", max_batch_size=32)
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ceir_sdk.errors import BadInputError, CeirError, IncompatibleFileError
from ceir_serve.engine import Engine
from ceir_serve.errors import ApiError, error_body
from ceir_serve.metrics import route_label
from ceir_serve.schemas import EmbeddingsRequest, ExplainRequest, ImageInput, ItemsRequest, SearchRequest, TextInput
from ceir_serve.settings import ServeSettings

log = logging.getLogger("ceir_serve")
T = TypeVar("T")
#: Reachable without the token: probes must work before anyone configures credentials into them.
OPEN_PATHS = ("/health", "/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json")


def create_app(bundle: str | os.PathLike[str], index: str | os.PathLike[str] | None = None,
               settings: ServeSettings | None = None, **options: Any) -> FastAPI:
    """Load the bundle (and index) now, so that a bad bundle or a missing GPU fails before the
    server binds; ``options`` are :class:`ServeSettings` fields."""
    if settings is not None and options:
        raise BadInputError(f"give settings= or keyword options ({', '.join(options)}), not both")
    settings = settings or ServeSettings(**options)
    return build_app(Engine.load(Path(bundle), settings, None if index is None else Path(index)))


def build_app(engine: Engine, *, batch_backend: str = "local") -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await engine.start(batch_backend=batch_backend)
        yield
        await engine.stop()

    app = FastAPI(title="ceir serve", version="0.1.0", lifespan=lifespan,
                  description="CEIR embeddings, explanations and concept search (OpenAI-compatible embeddings).")
    app.state.engine = engine
    _add_error_handlers(app)
    app.add_middleware(Guard, engine=engine)
    _add_routes(app, engine)
    return app


# -- errors ---------------------------------------------------------------------------------
def _error(status: int, message: str, code: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, code, status), status_code=status, headers=dict(headers or {}))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "invalid request: " + "; ".join(problems) + " (the schema is at /docs)", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = "no such endpoint; the endpoints are listed at /docs"
        elif exc.status_code == 405:
            message = "method not allowed on this endpoint; see /docs"
        return _error(exc.status_code, message, "http_error", exc.headers)

    @app.exception_handler(BadInputError)
    async def bad_input(_: Request, exc: BadInputError) -> JSONResponse:
        return _error(400, str(exc), "bad_input")

    @app.exception_handler(CeirError)
    async def ceir_error(_: Request, exc: CeirError) -> JSONResponse:
        status = 500 if isinstance(exc, IncompatibleFileError) else 400
        return _error(status, str(exc), type(exc).__name__)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server's log, never to the client.
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); it is logged on the server", "internal_error")


# -- middleware: metrics, bearer token, body size -------------------------------------------------
class Guard:
    """Pure ASGI (no buffering): counts and times every request, checks the bearer token,
    and stops a body larger than the limit before it is read in full."""

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.engine.metrics
        route = route_label(scope["path"])
        started = time.perf_counter()
        status = [500]

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_counted)
            else:
                await self.app(scope, self._limited(receive), send_counted)
        finally:
            metrics.requests.labels(route, scope["method"], str(status[0])).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        settings = self.engine.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = os.environ.get(settings.token_env, "")
        if token and scope["path"] not in OPEN_PATHS:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            # constant-time: the comparison must not tell an attacker how much of a guess was right
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return _error(401, f"missing or wrong bearer token: send 'Authorization: Bearer <token>' (the token "
                                   f"is in the server's {settings.token_env} environment variable)", "unauthorized",
                              {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > settings.max_body_bytes
            except ValueError:
                return _error(400, "Content-Length is not a number", "bad_request")
            if too_big:
                return _error(413, _too_big(settings), "body_too_large")
        return None

    def _limited(self, receive: Receive) -> Receive:
        limit = self.engine.settings.max_body_bytes
        seen = [0]

        async def guarded() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    # FastAPI passes an HTTPException raised while reading the body through as it is
                    raise StarletteHTTPException(413, _too_big(self.engine.settings))
            return message

        return guarded


def _too_big(settings: ServeSettings) -> str:
    return (f"the request body is larger than this server's limit of {settings.max_body_bytes:,} bytes; send fewer "
            "or smaller images per request (the operator sets the limit with --max-body-bytes)")


async def _timed(engine: Engine, work: Awaitable[T]) -> T:
    limit = engine.settings.request_timeout_s
    try:
        return await asyncio.wait_for(work, limit)
    except asyncio.TimeoutError:
        raise ApiError(504, f"the request took longer than this server's limit of {limit:g} s (the server is busy or "
                            "the request is large); retry, or send fewer items per request", "timeout") from None


def _jsonable(x: Any) -> Any:
    """Hits and explanations hold numpy scalars; JSON has no NaN/inf (they become null)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    return x


def _vector(v: np.ndarray, encoding: str) -> Any:
    v = np.asarray(v, dtype="<f4")
    if encoding == "base64":  # OpenAI's convention: little-endian float32 bytes, base64
        return base64.b64encode(v.tobytes()).decode("ascii")
    return [float(x) for x in v]


def _check_count(engine: Engine, n: int, what: str) -> None:
    if n == 0:
        raise ApiError(400, f"{what} is empty: give at least one item", "empty_input")
    if n > engine.settings.max_items:
        raise ApiError(413, f"{what} holds {n} items; this server takes at most {engine.settings.max_items} per "
                            "request (split the request; the operator sets --max-items)", "too_many_items")


def _explanation(e: Any) -> dict[str, Any]:
    return {"present": [{"concept": c, "z": v} for c, v in e.present],
            "top": [{"concept": c, "z": v} for c, v in e.top],
            "absent": [{"concept": c, "z": v} for c, v in e.absent]}


# -- routes -----------------------------------------------------------------------------------
def _add_routes(app: FastAPI, engine: Engine) -> None:
    def check_model(model: str | None) -> None:
        if model is not None and model != engine.model_name:
            raise ApiError(404, f"model {model!r} is not served here; this server serves {engine.model_name!r} "
                                "(GET /v1/models)", "model_not_found")

    @app.get("/health", summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Loaded and warmed up: ready for traffic")
    async def ready() -> JSONResponse:
        if not engine.ready:
            return _error(503, "warming up: the graphs are not loaded yet", "not_ready")
        info: dict[str, Any] = {"status": "ready", "model": engine.model_name, "providers": engine.runtime.providers,
                                "precision": engine.runtime.precision,
                                "backend": getattr(engine.runtime, "backend", "onnxruntime"),
                                "concepts": len(engine.runtime.concepts),
                                "text": engine.has_text}
        if engine.index is not None:
            info["index"] = {"count": len(engine.index), "writes": engine.settings.allow_writes}
        return JSONResponse(_jsonable(info))

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        for b in engine._batchers:
            engine.metrics.on_depth(b.name, b.depth)
        return Response(generate_latest(engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", summary="The served model (OpenAI-compatible)")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "owned_by": "ceir"}]}

    @app.post("/v1/embeddings", summary="Embed texts and images (OpenAI-compatible)")
    async def embeddings(body: EmbeddingsRequest) -> JSONResponse:
        check_model(body.model)
        items = [body.input] if isinstance(body.input, str) else list(body.input)
        _check_count(engine, len(items), "input")
        texts: list[tuple[int, str]] = []
        images: list[tuple[int, str]] = []
        for i, item in enumerate(items):
            if isinstance(item, ImageInput):
                images.append((i, item.image))
            elif isinstance(item, TextInput):
                texts.append((i, item.text))
            elif body.modality == "image":
                images.append((i, item))
            else:
                texts.append((i, item))
        for i, t in texts:
            if not t.strip():
                raise ApiError(400, f"input[{i}] is an empty text; give some words", "empty_input")

        async def work() -> tuple[list[Any], int]:
            rows: list[Any] = [None] * len(items)
            tokens = 0
            jobs: list[Awaitable[Any]] = []
            if images:
                jobs.append(engine.embed_images([v for _, v in images]))
            if texts:
                jobs.append(engine.embed_texts([t for _, t in texts]))
            done = await asyncio.gather(*jobs)
            if images:
                for (i, _), row in zip(images, done[0], strict=True):
                    rows[i] = row
            if texts:
                text_rows, tokens = done[-1]
                for (i, _), row in zip(texts, text_rows, strict=True):
                    rows[i] = row
            return rows, tokens

        rows, tokens = await _timed(engine, work())
        pick = 0 if body.space == "concepts" else 1
        dim = len(rows[0][pick])
        if body.dimensions is not None and body.dimensions != dim:
            raise ApiError(400, f"dimensions={body.dimensions}, but this model's {body.space} vectors have {dim} "
                                "(they cannot be shortened); leave dimensions out", "bad_dimensions")
        data = [{"object": "embedding", "index": i, "embedding": _vector(r[pick], body.encoding_format)}
                for i, r in enumerate(rows)]
        # A Response, not a dict: FastAPI would otherwise run every float through jsonable_encoder.
        return JSONResponse({"object": "list", "data": data, "model": engine.model_name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "images": len(images)}})

    @app.post("/v1/explain", summary="The concepts an image shows, with their signed z-scores")
    async def explain(body: ExplainRequest) -> JSONResponse:
        images = [body.input] if isinstance(body.input, str) else list(body.input)
        _check_count(engine, len(images), "input")
        rows = await _timed(engine, engine.embed_images(images))
        concepts = np.stack([c for c, _ in rows])
        found = await asyncio.get_running_loop().run_in_executor(None, engine.explain_rows, concepts, body.top_k)
        return JSONResponse(_jsonable({"object": "list", "model": engine.model_name,
                                       "data": [{"index": i, **_explanation(e)} for i, e in enumerate(found)]}))

    @app.post("/v1/search", summary="Search the index by text, image, concept expression or item with edits")
    async def search(body: SearchRequest) -> JSONResponse:
        index = engine.need_index()
        given = [n for n in ("text", "image", "concepts", "item_id") if getattr(body, n) is not None]
        if len(given) != 1:
            raise ApiError(422, "give exactly one of text, image, concepts (an expression such as '+striped -grass') "
                                f"or item_id; got {', '.join(given) or 'none'}", "bad_query")
        if (body.add or body.remove or body.set) and body.item_id is None:
            raise ApiError(422, "add, remove and set edit an item's concepts: give them with item_id", "bad_query")
        if body.where is not None:
            from ceir_sdk.index import compile_filter

            compile_filter(body.where)  # a bad filter is the client's error: checked before any work
        loop = asyncio.get_running_loop()

        async def work() -> list[Any]:
            if body.text is not None or body.image is not None:
                if body.text is not None:
                    if not body.text.strip():
                        raise ApiError(400, "text is empty; give some words", "empty_input")
                    (rows, _) = await engine.embed_texts([body.text])
                else:
                    rows = await engine.embed_images([body.image], where="image")
                acts, lat = rows[0]
                query_acts = acts[None, :] if index.concepts else None
                hits = await loop.run_in_executor(None, lambda: index.search(
                    lat[None, :], body.k, where=body.where, query_concepts=query_acts, explain_top=body.explain_top))
                return list(hits[0])
            if body.concepts is not None:
                return list(await loop.run_in_executor(None, lambda: index.search_concepts(
                    body.concepts, body.k, where=body.where, ranking=body.ranking or "calibrated",
                    presence=body.presence, strict=body.strict)))
            assert body.item_id is not None
            if not engine.has_item(body.item_id):
                raise ApiError(404, f"item {body.item_id} is not in the index", "not_found")
            return list(await loop.run_in_executor(None, lambda: index.search_like(
                int(body.item_id or 0), body.k, add=body.add, remove=body.remove, set_values=body.set or None,
                where=body.where)))

        hits = await _timed(engine, work())
        return JSONResponse({"object": "list", "model": engine.model_name,
                             "data": _jsonable([h.as_dict() for h in hits])})

    @app.post("/v1/items", summary="Add images to the index (--allow-writes)")
    async def add_items(body: ItemsRequest) -> dict[str, Any]:
        engine.commit_allowed()
        _check_count(engine, len(body.items), "items")
        rows = await _timed(engine, engine.embed_images([it.image for it in body.items], where="items"))
        acts = np.stack([c for c, _ in rows])
        lat = np.stack([v for _, v in rows])
        records = [{**it.fields, **({"key": it.key} if it.key is not None else {}),
                    **({"path": it.path} if it.path is not None else {})} for it in body.items]
        # Not cancelled by the request timeout: a change half-way through a save must finish.
        ids = await asyncio.get_running_loop().run_in_executor(
            None, engine.commit, lambda index: index.add(lat, acts, metadata=records))
        return {"object": "list", "ids": [int(i) for i in ids], "count": len(engine.need_index())}

    @app.delete("/v1/items/{item_id}", summary="Remove an item from the index (--allow-writes)")
    async def delete_item(item_id: int) -> dict[str, Any]:
        engine.commit_allowed()
        if item_id < 0 or not engine.has_item(item_id):
            raise ApiError(404, f"item {item_id} is not in the index", "not_found")
        await asyncio.get_running_loop().run_in_executor(None, engine.commit, lambda index: index.remove([item_id]))
        return {"removed": item_id, "count": len(engine.need_index())}
