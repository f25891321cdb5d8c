"""The work behind the endpoints: one runtime, one optional index, the batchers and the thread pools.

The event loop only parses requests and awaits; decoding runs in ``decode_pool``, inference in
a single-thread ``infer_pool`` (onnxruntime spreads one batch over its own intra-op threads;
two batches at once would only fight over the cores), index queries and writes in the loop's
default executor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError, ConflictError
from ceir_serve.batching import DynamicBatcher
from ceir_serve.decode import pixels_of
from ceir_serve.errors import ApiError
from ceir_serve.metrics import Metrics
from ceir_serve.settings import ServeSettings

log = logging.getLogger("ceir_serve")

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
Row = tuple[np.ndarray, np.ndarray]  # (concepts (C,), latent (L,))
Submit = Callable[[Any], Awaitable[Any]]


def load_runtime(bundle: str | Path, settings: ServeSettings) -> Any:
    """The bundle's runtime, refusing a GPU provider that was asked for and not obtained."""
    from ceir_onnx.runtime import Runtime

    rt = Runtime(bundle, precision=settings.precision, backend=settings.backend, providers=settings.providers,
                 threads=settings.threads,
                 batch_size=max(settings.max_batch_size, 1), decode_workers=settings.decode_workers,
                 max_pixels=settings.max_pixels)
    wanted = settings.providers.lower()
    asked_gpu = wanted in ("cuda", "tensorrt", "trt") or any(p in settings.providers for p in GPU_PROVIDERS)
    if asked_gpu and not any(p in rt.providers for p in GPU_PROVIDERS) and not settings.allow_cpu_fallback:
        raise BadInputError(
            f"--providers {settings.providers} was asked for, but onnxruntime runs this bundle on {rt.providers} "
            "(no GPU provider could be started; `ceir doctor` says which onnxruntime build is installed and which "
            "GPUs it sees). Install onnxruntime-gpu (pip install 'ceir-onnx[gpu]'), or pass --allow-cpu-fallback "
            "to serve on the CPU anyway")
    log.info("runtime: %s", rt.describe()["summary"])  # which backend/precision and why (given, tuned, default)
    return rt


def load_index(index_dir: str | Path, runtime: Any) -> Any:
    """The index, checked against the bundle: a server must not answer with another model's space."""
    from ceir_sdk.index import ConceptIndex

    index = ConceptIndex.load(index_dir, encoder=runtime)
    if index.concepts and list(index.concepts) != list(runtime.concepts):
        raise BadInputError(
            f"the index at {index_dir} explains by {len(index.concepts)} concepts that differ from the bundle's "
            f"{len(runtime.concepts)}: it was built with another model. Serve the bundle that built it (see "
            "`ceir index info`), or rebuild the index with this bundle")
    latent_dim = int(runtime.concept_vector(np.zeros((1, len(runtime.concepts)), np.float32)).shape[1])
    if index.dim != latent_dim:
        raise BadInputError(f"the index at {index_dir} holds {index.dim}-d vectors but the bundle's latents are "
                            f"{latent_dim}-d: it was built with another model")
    return index


def token_counts(runtime: Any, texts: Sequence[str]) -> list[int]:
    """Tokens per text as the text graph sees them (start and end tokens included)."""
    tokens = runtime.tokenizer(list(texts))
    return [int(n) for n in np.count_nonzero(tokens, axis=1)]


class Engine:
    def __init__(self, runtime: Any, settings: ServeSettings, *, index: Any = None,
                 index_dir: str | Path | None = None, model_name: str | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.index = index
        self.index_dir = None if index_dir is None else Path(index_dir)
        self.model_name = model_name or settings.model_name or Path(runtime.root).name
        self.metrics = Metrics()
        self.decode_pool = ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="ceir-decode")
        self.infer_pool = ThreadPoolExecutor(1, thread_name_prefix="ceir-infer")
        self._write_lock = threading.Lock()
        self._batchers: list[DynamicBatcher] = []
        self.submit_image: Submit | None = None
        self.submit_text: Submit | None = None
        self.ready = False
        # Items accepted but not yet submitted to a batcher (decoding, tokenising), per kind: what
        # a waiting batch can still expect. Changed on the event loop only.
        self.coming = {"image": 0, "text": 0}
        self.has_text = bool(runtime.manifest.get("tokenizer")) and "text" in runtime.manifest["graphs"]

    @classmethod
    def load(cls, bundle: str | Path, settings: ServeSettings, index_dir: str | Path | None = None) -> Engine:
        runtime = load_runtime(bundle, settings)
        index = None if index_dir is None else load_index(index_dir, runtime)
        return cls(runtime, settings, index=index, index_dir=index_dir)

    # -- batch functions (run on infer_pool) --------------------------------------------
    def run_images(self, pixels: Sequence[np.ndarray]) -> list[Row]:
        emb = self.runtime.run_pixels(np.stack(pixels))
        return list(zip(emb.concepts, emb.latent, strict=True))

    def run_texts(self, texts: Sequence[str]) -> list[Row]:
        concepts, latents = self.runtime.encode_texts(list(texts))
        return list(zip(concepts, latents, strict=True))

    # -- life cycle ----------------------------------------------------------------------
    async def start(self, *, batch_backend: str = "local") -> None:
        """Start the batchers and warm the graphs (the first run of a session is slow)."""
        s = self.settings
        if batch_backend == "ray":
            from ceir_serve.ray_backend import ray_submitters

            self.submit_image, self.submit_text = ray_submitters(self)
        else:
            images = DynamicBatcher("image", self.run_images, max_batch_size=s.max_batch_size,
                                    max_wait_s=s.max_wait_ms / 1000, executor=self.infer_pool,
                                    on_batch=self.metrics.on_batch, on_depth=self.metrics.on_depth,
                                    coming=lambda: self.coming["image"])
            texts = DynamicBatcher("text", self.run_texts, max_batch_size=s.max_batch_size,
                                   max_wait_s=s.max_wait_ms / 1000, executor=self.infer_pool,
                                   on_batch=self.metrics.on_batch, on_depth=self.metrics.on_depth,
                                   coming=lambda: self.coming["text"])
            self._batchers = [images, texts]
            for b in self._batchers:
                b.start()
            self.submit_image, self.submit_text = images.submit, texts.submit
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.infer_pool, self._warm_up)
        self.ready = True

    def _warm_up(self) -> None:
        size = self.runtime.preprocess_config.image_size
        self.runtime.run_pixels(np.zeros((1, 3, size, size), np.float32))
        if self.has_text:
            self.runtime.encode_texts(["a photo"])

    async def stop(self) -> None:
        self.ready = False
        for b in self._batchers:
            await b.stop()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        self.infer_pool.shutdown(wait=False, cancel_futures=True)

    # -- embedding -----------------------------------------------------------------------
    async def decode(self, values: Sequence[Any], where: str) -> list[np.ndarray]:
        """Images of a request -> pixels, decoded in parallel off the event loop."""
        loop = asyncio.get_running_loop()
        jobs = [loop.run_in_executor(self.decode_pool, pixels_of, v, f"{where}[{i}]", self.runtime)
                for i, v in enumerate(values)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for r in results:  # the first bad image names itself; the others' work was small
            if isinstance(r, BaseException):
                raise r
        return [r for r in results if isinstance(r, np.ndarray)]

    async def embed_images(self, values: Sequence[Any], where: str = "input") -> list[Row]:
        self.coming["image"] += len(values)
        try:
            pixels = await self.decode(values, where)
        finally:
            self.coming["image"] -= len(values)
        assert self.submit_image is not None
        return list(await asyncio.gather(*(self.submit_image(p) for p in pixels)))

    async def embed_texts(self, texts: Sequence[str]) -> tuple[list[Row], int]:
        """Rows per text and the number of tokens (OpenAI's ``usage``)."""
        if not self.has_text:
            raise ApiError(400, "this bundle is image-only (exported without a text graph and tokenizer); send "
                                "images, or serve a bundle exported from a backbone with a text tower", "no_text_graph")
        loop = asyncio.get_running_loop()
        self.coming["text"] += len(texts)
        try:
            counts = await loop.run_in_executor(self.decode_pool, token_counts, self.runtime, texts)
        finally:
            self.coming["text"] -= len(texts)
        assert self.submit_text is not None
        rows = await asyncio.gather(*(self.submit_text(t) for t in texts))
        return list(rows), sum(counts)

    def explain_rows(self, concepts: np.ndarray, top_k: int) -> list[Any]:
        return list(self.runtime.explain(concepts=concepts, top_k=top_k))

    # -- index ---------------------------------------------------------------------------
    def need_index(self) -> Any:
        if self.index is None:
            raise ApiError(404, "this server has no index: start it with `ceir serve BUNDLE --index DIR` to search",
                           "no_index")
        return self.index

    def has_item(self, item_id: int) -> bool:
        return bool(np.isin(item_id, self.need_index().ids).item())

    def _load_fresh(self) -> Any:
        assert self.index_dir is not None
        return load_index(self.index_dir, self.runtime)

    def commit_allowed(self) -> None:
        if self.index_dir is None or not self.settings.allow_writes:
            raise ApiError(403, "this server is read-only: start it with --allow-writes (and --index DIR) to add "
                                "or remove items", "read_only")

    def commit(self, change: Callable[[Any], Any]) -> Any:
        """Apply ``change`` to the index and save it; another writer's save in between means a
        fresh load and the change again (backing off, for up to the request time limit), so
        concurrent writers (other replicas, `ceir index add`) lose nothing. Runs in a worker
        thread; one change at a time per server."""
        from ceir_sdk.index.commit import save_change

        self.commit_allowed()
        assert self.index_dir is not None
        with self._write_lock:
            try:
                self.index, result = save_change(self.need_index(), self.index_dir, change, self._load_fresh,
                                                 within_s=self.settings.request_timeout_s)
                return result
            except ConflictError as e:
                self.index = self._load_fresh()  # memory holds a change the disk lacks
                raise ApiError(503, str(e), "write_conflict") from None
            except BaseException:
                # memory holds a change the disk lacks: go back to what is saved
                self.index = self._load_fresh()
                raise
