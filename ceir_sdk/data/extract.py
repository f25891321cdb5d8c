"""Feature extraction pipeline shared by backbones: hashing, cache look-up, decoding and
preprocessing run in worker threads, batches ahead of the model, which runs on the calling
thread; results come back in input order with the on_error policy applied.

Threads (not processes) because PIL decoding, hashing and torch ops release the GIL, and
threads work with generators, Worlds and any dataset without pickling.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceir_sdk.data.dataset import ImageDataset, ImageRef, try_load
from ceir_sdk.data.feature_cache import FeatureCache
from ceir_sdk.data.images import ImageLoadError, NoUsableImagesError, check_pixel_limit
from ceir_sdk.data.report import LoadReport
from ceir_sdk.errors import BadInputError


@dataclass
class EncodedImages:
    """Features in input order for the images that were usable, with their ids and labels."""

    features: np.ndarray
    ids: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    paths: list[str | None] = field(default_factory=list)
    concepts: list[frozenset[str] | None] = field(default_factory=list)
    report: LoadReport = field(default_factory=LoadReport)
    n_cached: int = 0
    n_encoded: int = 0

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _Prepared:
    refs: list[ImageRef]
    keys: list[str | None]
    # per ref: a cached row (ndarray), a preprocessed input (anything), or the load error
    results: list[Any]
    notes: list[str]
    cached: list[bool]


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _chunks(it: Iterator[ImageRef], size: int) -> Iterator[list[ImageRef]]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def extract_features(
    dataset: ImageDataset,
    *,
    transform: Callable[[Any], Any],
    encode_batch: Callable[[list[Any]], np.ndarray],
    dim: int,
    cache: FeatureCache | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: bool = True,
    desc: str = "encoding images",
) -> EncodedImages:
    """Run ``encode_batch`` (list of transformed images -> (B, dim) float32) over a dataset."""
    if batch_size <= 0:
        raise BadInputError(f"batch_size must be positive, got {batch_size}")
    workers = default_workers() if num_workers is None else max(1, int(num_workers))
    report = dataset.new_report()
    cache_lock = threading.Lock()
    options = dataset.options

    def prepare(chunk: list[ImageRef]) -> _Prepared:
        keys: list[str | None] = [None] * len(chunk)
        results: list[Any] = [None] * len(chunk)
        notes = [""] * len(chunk)
        cached = [False] * len(chunk)
        if cache is not None:
            for i, ref in enumerate(chunk):
                try:
                    keys[i] = ref.content_hash()
                except ImageLoadError as exc:
                    results[i] = exc
            with cache_lock:
                found = cache.get_many([k for k in keys if k is not None])
            for i, key in enumerate(keys):
                if key is not None and key in found:
                    path = chunk[i].path
                    try:
                        if path is not None:
                            check_pixel_limit(path, options)
                    except ImageLoadError as exc:
                        results[i] = exc
                        continue
                    results[i], cached[i] = found[key], True
        for i, ref in enumerate(chunk):
            if cached[i] or isinstance(results[i], ImageLoadError):
                continue
            item = try_load(ref, options)
            if isinstance(item, ImageLoadError):
                results[i] = item
                continue
            notes[i] = item.note
            results[i] = transform(item.image)
        return _Prepared(chunk, keys, results, notes, cached)

    from tqdm.auto import tqdm

    total = dataset.length()
    rows: list[np.ndarray] = []
    out = EncodedImages(features=np.zeros((0, dim), np.float32), report=report)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ceir-decode")
    inflight: deque[Future[_Prepared]] = deque()
    chunks = _chunks(dataset.refs(), batch_size)
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)
    try:
        for chunk in itertools.islice(chunks, workers + 1):
            inflight.append(executor.submit(prepare, chunk))
        while inflight:
            prepared = inflight.popleft().result()
            nxt = next(chunks, None)
            if nxt is not None:
                inflight.append(executor.submit(prepare, nxt))
            _consume(prepared, out, rows, encode_batch, cache, cache_lock, dataset)
            bar.update(len(prepared.refs))
            bar.set_postfix(cached=out.n_cached, skipped=report.n_skipped, refresh=False)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        bar.close()
        if cache is not None:
            with cache_lock:
                cache.flush()  # keep the work done so far, also when interrupted
    if rows:
        out.features = np.concatenate(rows).astype(np.float32, copy=False)
    if report.n_skipped:
        report.log()
    if not out.ids:
        if report.n_skipped:
            raise NoUsableImagesError(f"none of the images could be used: {report.summary()}")
        raise BadInputError("no images were given (the input is empty)")
    return out


def _consume(
    prepared: _Prepared,
    out: EncodedImages,
    rows: list[np.ndarray],
    encode_batch: Callable[[list[Any]], np.ndarray],
    cache: FeatureCache | None,
    cache_lock: threading.Lock,
    dataset: ImageDataset,
) -> None:
    report = out.report
    keep: list[int] = []
    for i, (ref, result) in enumerate(zip(prepared.refs, prepared.results)):
        if isinstance(result, ImageLoadError):
            report.record_error(result, item_id=ref.id, path=ref.path, on_error=dataset.on_error)
        else:
            report.record_loaded(prepared.notes[i])
            keep.append(i)
    if not keep:
        return
    todo = [i for i in keep if not prepared.cached[i]]
    encoded: dict[int, np.ndarray] = {}
    if todo:
        feats = np.asarray(encode_batch([prepared.results[i] for i in todo]), dtype=np.float32)
        encoded = dict(zip(todo, feats))
        if cache is not None:
            keys = [prepared.keys[i] for i in todo]
            if all(k is not None for k in keys):
                with cache_lock:
                    cache.put_many([str(k) for k in keys], feats)
    batch = np.stack([encoded[i] if i in encoded else prepared.results[i] for i in keep]).astype(np.float32)
    rows.append(batch)
    out.n_encoded += len(todo)
    out.n_cached += len(keep) - len(todo)
    for i in keep:
        ref = prepared.refs[i]
        out.ids.append(ref.id)
        out.labels.append(ref.label)
        out.paths.append(ref.path)
        out.concepts.append(ref.concepts)

