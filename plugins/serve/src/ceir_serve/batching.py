"""Dynamic batching: items submitted one by one, run together.

Each ``submit`` parks a future in a queue; one background task takes the items that arrive
within ``max_wait_s`` of the oldest waiting one (at most ``max_batch_size``), runs them as one
call of ``fn`` on the inference executor (never on the event loop), and resolves the futures.
While a batch runs, the next one fills, so a busy server batches without waiting at all.
``coming`` (optional) says how many items are on their way (requests still being decoded): with
none coming, waiting cannot fill the batch, so it runs at once and a lone request pays no wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

BatchFn = Callable[[Sequence[Any]], Sequence[Any]]


class DynamicBatcher:
    def __init__(self, name: str, fn: BatchFn, *, max_batch_size: int, max_wait_s: float, executor: Executor,
                 on_batch: Callable[[str, int], None] | None = None,
                 on_depth: Callable[[str, int], None] | None = None,
                 coming: Callable[[], int] | None = None) -> None:
        self.name = name
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.executor = executor
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._coming = coming
        self._pending: deque[tuple[Any, asyncio.Future[Any], float]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._pending:
            _, fut, _ = self._pending.popleft()
            if not fut.done():
                fut.set_exception(RuntimeError("the server is shutting down"))

    async def submit(self, item: Any) -> Any:
        if self._task is None or self._wake is None:
            raise RuntimeError(f"batcher {self.name!r} is not running")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut, time.monotonic()))
        self._report_depth()
        self._wake.set()
        return await fut

    def _report_depth(self) -> None:
        if self._on_depth is not None:
            self._on_depth(self.name, len(self._pending))

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            # Wait for company: until the batch is full or the oldest item has waited max_wait_s.
            deadline = self._pending[0][2] + self.max_wait_s
            while len(self._pending) < self.max_batch_size:
                if self._coming is not None and self._coming() == 0:
                    break  # nobody else is on the way: waiting would only add latency
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch: list[tuple[Any, asyncio.Future[Any]]] = []
            while self._pending and len(batch) < self.max_batch_size:
                item, fut, _ = self._pending.popleft()
                if not fut.cancelled():  # its request timed out or went away: skip the work
                    batch.append((item, fut))
            self._report_depth()
            if not batch:
                continue
            if self._on_batch is not None:
                self._on_batch(self.name, len(batch))
            try:
                results = await loop.run_in_executor(self.executor, self.fn, [item for item, _ in batch])
            except Exception as exc:  # every request of the batch gets the error; the loop goes on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
