"""The feature cache (persistence, atomicity, damage tolerance) and the extraction pipeline."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from image_zoo import GOOD
from PIL import Image

from ceir_sdk.data import FeatureCache, as_dataset, default_cache_root, extract_features
from ceir_sdk.errors import BadInputError

NS = {"backbone": "test", "v": 1}


def _rows(n: int, dim: int = 4, offset: float = 0.0) -> np.ndarray:
    return (np.arange(n * dim, dtype=np.float32).reshape(n, dim) + offset).astype(np.float32)


def test_roundtrip_and_persistence(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, NS, 4)
    cache.put_many(["a", "b"], _rows(2))
    assert set(cache.get_many(["a", "b", "c"])) == {"a", "b"}  # pending rows are visible
    cache.flush()
    again = FeatureCache(tmp_path, NS, 4)
    got = again.get_many(["b", "a", "zzz"])
    assert np.array_equal(got["a"], _rows(2)[0]) and np.array_equal(got["b"], _rows(2)[1])
    assert again.hits == 2 and again.misses == 1
    other = FeatureCache(tmp_path, {"backbone": "other"}, 4)  # another backbone: separate namespace
    assert other.get_many(["a"]) == {}
    assert json.loads((cache.dir / "namespace.json").read_text()) == NS


def test_interrupted_write_keeps_the_previous_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path, NS, 4)
    cache.put_many(["a"], _rows(1))
    cache.flush()
    before = (cache.dir / "index.json").read_bytes()
    cache.put_many(["b"], _rows(1, offset=9))

    def crash(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.flush()
    monkeypatch.undo()
    assert (cache.dir / "index.json").read_bytes() == before
    assert not [p for p in cache.dir.iterdir() if p.name.endswith(".tmp")]  # temp files cleaned up
    fresh = FeatureCache(tmp_path, NS, 4)
    assert set(fresh.get_many(["a", "b"])) == {"a"}


def test_damaged_cache_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = FeatureCache(tmp_path, NS, 4)
    cache.put_many(["a"], _rows(1))
    cache.flush()
    (cache.dir / "index.json").write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="ceir_sdk.data"):
        assert FeatureCache(tmp_path, NS, 4).get_many(["a"]) == {}
    assert "unreadable feature cache index" in caplog.text
    # a shard that lost its bytes after indexing: skipped on open, nothing crashes
    cache2 = FeatureCache(tmp_path, {"x": 2}, 4)
    cache2.put_many(["k"], _rows(1))
    cache2.flush()
    for shard in cache2.dir.glob("shard-*.safetensors"):
        shard.write_bytes(b"garbage")
    assert FeatureCache(tmp_path, {"x": 2}, 4).get_many(["k"]) == {}
    # a different feature size in the same folder is refused, not mixed in
    assert FeatureCache(tmp_path, {"x": 2}, 8).get_many(["k"]) == {}


def test_default_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CEIR_FEATURE_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path
    monkeypatch.setenv("CEIR_FEATURE_CACHE", "off")
    assert default_cache_root() is None
    monkeypatch.delenv("CEIR_FEATURE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / "ceir" / "features"


class _CountingEncoder:
    """Stands in for a model: the mean colour per image, counting how many images it sees."""

    def __init__(self) -> None:
        self.calls = 0
        self.images = 0

    def transform(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(0) / 255.0

    def __call__(self, batch: list[np.ndarray]) -> np.ndarray:
        self.calls += 1
        self.images += len(batch)
        return np.stack(batch).astype(np.float32)


def _extract(images: Any, enc: _CountingEncoder, cache: FeatureCache | None, **kw: Any) -> Any:
    return extract_features(
        as_dataset(images, **kw), transform=enc.transform, encode_batch=enc, dim=3, cache=cache,
        batch_size=3, num_workers=2, progress=False,
    )


def test_cache_hit_avoids_reencoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((10, 8, 8, 3)) * 255).astype(np.uint8)
    enc = _CountingEncoder()
    first = _extract(images, enc, FeatureCache(tmp_path, NS, 3))
    assert enc.images == 10 and first.n_encoded == 10 and first.n_cached == 0
    enc2 = _CountingEncoder()  # a new process refitting on the same images
    second = _extract(images, enc2, FeatureCache(tmp_path, NS, 3))
    assert enc2.calls == 0 and second.n_cached == 10
    assert np.array_equal(first.features, second.features)
    mixed = np.concatenate([images[:4], (rng.random((2, 8, 8, 3)) * 255).astype(np.uint8)])
    enc3 = _CountingEncoder()
    third = _extract(mixed, enc3, FeatureCache(tmp_path, NS, 3))
    assert enc3.images == 2 and third.n_cached == 4
    assert np.array_equal(third.features[:4], first.features[:4])


def test_pipeline_keeps_order_and_applies_policy(zoo: Path) -> None:
    enc = _CountingEncoder()
    out = _extract(zoo, enc, None, on_error="skip")
    assert out.ids == sorted(GOOD)  # input (sorted folder) order, bad files left out
    assert out.features.shape == (len(GOOD), 3) and out.features.dtype == np.float32
    assert out.report.n_skipped == 5 and len(out.paths) == len(GOOD)
    with pytest.raises(BadInputError, match=r"bomb\.png"):
        _extract(zoo, _CountingEncoder(), None)
    with pytest.raises(BadInputError, match="none of the images could be used"):
        _extract([zoo / "empty.png"], _CountingEncoder(), None, on_error="skip")
    with pytest.raises(BadInputError, match="input is empty"):
        _extract([], _CountingEncoder(), None)


def test_file_cache_keys_on_content_not_name(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    Image.new("RGB", (6, 6), (10, 20, 30)).save(a)
    b = tmp_path / "copy_of_a.png"
    b.write_bytes(a.read_bytes())
    cache = FeatureCache(tmp_path / "cache", NS, 3)
    _extract([a], _CountingEncoder(), cache)
    enc = _CountingEncoder()
    out = _extract([b], enc, cache)
    assert enc.calls == 0 and out.n_cached == 1
    Image.new("RGB", (6, 6), (99, 20, 30)).save(a)  # same name, new content: a miss
    enc = _CountingEncoder()
    _extract([a], enc, cache)
    assert enc.images == 1
