"""Runtime.embed_batches: a generator of batches (fastembed style) that equals embed_all when
joined, says which input each row is, and reports skipped files with the batch after them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx_helpers import photo_like
from PIL import Image


def test_embed_batches_streams_what_embed_all_returns(bundle: Path, tmp_path: Path) -> None:
    from ceir_onnx.runtime import Runtime

    for i, image in enumerate(photo_like(5, seed=41)):
        Image.fromarray(np.asarray(image)).save(tmp_path / f"{i}.png")
        if i == 1:
            (tmp_path / "1b.png").write_bytes(b"not a png")  # sorts between 1.png and 2.png
    files = sorted(str(p) for p in tmp_path.iterdir())
    rt = Runtime(bundle, providers="cpu", batch_size=2, on_error="skip")
    batches = rt.embed_batches(files)
    assert iter(batches) is batches  # a generator: nothing is computed before it is asked for
    got = list(batches)
    assert [len(b.latent) for b in got] == [2, 2, 1]
    assert [b.kept for b in got] == [[0, 1], [3, 4], [5]]  # position 2 is the broken file
    assert [len(b.skipped) for b in got] == [0, 1, 0] and got[1].skipped[0][0] == 2
    whole = rt.embed_all(files)
    np.testing.assert_allclose(np.concatenate([b.latent for b in got]), whole.latent, atol=1e-6)
    assert whole.kept == [0, 1, 3, 4, 5] and [s[0] for s in whole.skipped] == [2]


def test_a_skip_after_the_last_batch_is_reported(bundle: Path, tmp_path: Path) -> None:
    from ceir_onnx.runtime import Runtime

    Image.fromarray(np.asarray(photo_like(1, seed=42)[0])).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"broken")
    # batch_size=1: a.png fills the one batch; b.png, unreadable, comes after it
    rt = Runtime(bundle, providers="cpu", on_error="skip", batch_size=1)
    got = list(rt.embed_batches(sorted(tmp_path.iterdir())))
    assert [len(b.kept) for b in got] == [1, 0] and got[-1].skipped[0][0] == 1
