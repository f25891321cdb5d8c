"""Dynamic batching: items submitted together run together, within the size bound; errors reach every caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from ceir_serve.batching import DynamicBatcher


def _run(max_batch_size: int, n: int, fail_on: int | None = None, max_wait_s: float = 10.0) -> tuple[list, list]:
    calls: list[list[int]] = []

    def fn(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if fail_on is not None and fail_on in items:
            raise ValueError(f"item {fail_on} is bad")
        return [x * 10 for x in items]

    async def main() -> list:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("t", fn, max_batch_size=max_batch_size, max_wait_s=max_wait_s, executor=pool)
            b.start()
            try:
                return await asyncio.gather(*(b.submit(i) for i in range(n)), return_exceptions=True)
            finally:
                await b.stop()

    return asyncio.run(main()), calls


def test_items_submitted_together_run_as_one_batch() -> None:
    # max_wait 10 s, but a full batch runs at once: the test does not depend on timing
    results, calls = _run(max_batch_size=5, n=5)
    assert results == [0, 10, 20, 30, 40]
    assert calls == [[0, 1, 2, 3, 4]]


def test_batches_never_exceed_the_bound_and_keep_order() -> None:
    results, calls = _run(max_batch_size=4, n=10, max_wait_s=0.01)
    assert results == [x * 10 for x in range(10)]
    assert all(len(c) <= 4 for c in calls) and [x for c in calls for x in c] == list(range(10))


def test_a_failing_batch_fails_its_callers_and_the_batcher_goes_on() -> None:
    results, calls = _run(max_batch_size=2, n=4, fail_on=1, max_wait_s=0.01)
    assert calls[0] == [0, 1]
    assert isinstance(results[0], ValueError) and isinstance(results[1], ValueError)
    assert results[2:] == [20, 30]


def test_submit_before_start_is_an_error() -> None:
    b = DynamicBatcher("t", lambda xs: xs, max_batch_size=1, max_wait_s=0, executor=ThreadPoolExecutor(1))
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(b.submit(1))


def test_a_lone_item_does_not_wait_when_nothing_else_is_coming() -> None:
    # max_wait is an hour: only the "nothing is coming" rule lets this finish (60 s is a safety net)
    coming = {"n": 0}

    async def main() -> int:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("t", lambda xs: [x + 1 for x in xs], max_batch_size=8, max_wait_s=3600,
                               executor=pool, coming=lambda: coming["n"])
            b.start()
            try:
                return int(await asyncio.wait_for(b.submit(1), 60))
            finally:
                await b.stop()

    assert asyncio.run(main()) == 2
