"""Images through a bundle's image graph: decoding in threads a bounded window ahead of
inference, batches of pixels, and the three outputs of each batch."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceir_onnx.runtime.preprocess import PreprocessConfig, preprocess_one
from ceir_sdk.data.images import LoadOptions
from ceir_sdk.errors import BadInputError


@dataclass
class Embeddings:
    latent: np.ndarray  # (N, L) posterior means
    concepts: np.ndarray  # (N, C) z-scored concept activations
    image_features: np.ndarray  # (N, D) backbone features (CLIP space), unnormalised
    # With on_error="skip": the input position of each row, and the (position, why) of each skipped image.
    kept: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def run_batch(image_session: Any, pixels: np.ndarray) -> Embeddings:
    """One run of the image graph on preprocessed pixels (N, 3, S, S)."""
    concepts, latent, features = image_session.run(None, {"pixels": pixels})
    return Embeddings(latent=latent, concepts=concepts, image_features=features)


def concat(parts: list[Embeddings]) -> Embeddings:
    if not parts:
        raise BadInputError("no images were given")
    return Embeddings(
        latent=np.concatenate([p.latent for p in parts]),
        concepts=np.concatenate([p.concepts for p in parts]),
        image_features=np.concatenate([p.image_features for p in parts]),
    )


def _prepare(index: int, item: Any, config: PreprocessConfig, on_error: str,
             options: LoadOptions) -> tuple[int, np.ndarray | None, str]:
    try:
        return index, preprocess_one(item, config, options), ""
    except BadInputError as exc:
        if on_error == "fail":
            raise
        return index, None, str(exc)


def pixel_batches(items: Sequence[Any], config: PreprocessConfig, *, batch_size: int, workers: int,
                  on_error: str, options: LoadOptions, skipped: list[tuple[int, str]],
                  ) -> Iterator[tuple[list[int], np.ndarray]]:
    """Decode and preprocess in threads, a bounded window ahead of inference; yields
    (input positions, pixels) and lists unreadable images in ``skipped``."""
    window = 2 * batch_size
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[tuple[int, np.ndarray | None, str]]] = deque()
        it = iter(enumerate(items))
        for index, item in it:
            pending.append(pool.submit(_prepare, index, item, config, on_error, options))
            if len(pending) >= window:
                break
        positions: list[int] = []
        batch: list[np.ndarray] = []
        while pending:
            index, pixels, problem = pending.popleft().result()
            if pixels is None:
                skipped.append((index, problem))
            else:
                positions.append(index)
                batch.append(pixels)
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_prepare, *nxt, config, on_error, options))
            if len(batch) == batch_size:
                yield positions, np.stack(batch)
                positions, batch = [], []
        if batch:
            yield positions, np.stack(batch)
