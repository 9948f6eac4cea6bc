"""Gathering the texts of concurrent requests into model calls, in one worker thread.

The model call blocks (TensorFlow), so it runs outside the event loop, in one
thread: one call at a time, which is how a model is fastest on its device
anyway. Requests wait in a bounded `asyncio.Queue`; a full queue refuses the
next request at once (`QueueFull`, the server's 503) instead of holding more
and more bodies in memory. The collector takes the oldest request, adds the
requests behind it until the batch holds `max_batch_texts` texts or the first
has waited `max_wait_ms` since it arrived (none when the model was busy for
longer, so a loaded server never waits, and none while the last batch held a
single request, so a lone client is answered at once), and makes one call per decision rule
among them (`key`; most batches have one). A request is never split; one
with more texts than `max_batch_texts` is a call of its own.

```python
batcher = Batcher(lambda key, texts: [len(text) for text in texts], max_batch_texts=64, max_wait_ms=5)
await batcher.start()
await batcher.submit(["one text", "another"])       # [8, 7], from one call with the other waiting requests
await batcher.close()                               # every queued request answered, the thread stopped
```
"""

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

__all__ = ["Batcher", "QueueFull"]

_STOP = object()


class QueueFull(Exception):
    """The queue holds `queue_size` requests: the server answers 503 with `Retry-After`."""


@dataclass
class _Job:
    texts: list
    key: Hashable
    future: asyncio.Future
    arrived: float


class Batcher:
    """Requests' texts gathered into calls of `predict(key, texts) -> one result per text`.

    Args:
        predict: the blocking model call, run in the worker thread; `key` is
            what the texts' requests asked for beyond the texts (hashable).
        max_batch_texts: the most texts one call is given (a larger request alone).
        max_wait_ms: how long after its arrival a request waits for others.
        queue_size: the most requests waiting; `submit` raises `QueueFull` past it.
        metrics: a `toolkit.serving.metrics.ServerMetrics` to record each call in, or None.
    """

    def __init__(
        self,
        predict: Callable[[Hashable, list], list],
        *,
        max_batch_texts: int = 64,
        max_wait_ms: float = 5.0,
        queue_size: int = 64,
        metrics=None,
    ):
        self._predict = predict
        self.max_batch_texts = max_batch_texts
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zlpr-model")
        self._queue: Optional[asyncio.Queue] = None
        self._carry = None
        self._last_batch = 2  # requests in the last batch (start as if from several clients)
        self._collector: Optional[asyncio.Task] = None

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not those in the call under way)."""
        waiting = self._queue.qsize() if self._queue is not None else 0
        return waiting + (1 if isinstance(self._carry, _Job) else 0)

    async def start(self) -> None:
        """Start the collector on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._collector = asyncio.create_task(self._collect(), name="zlpr-batcher")

    async def in_worker(self, function, *args):
        """Run `function(*args)` in the model's thread, after the calls before it (loading the model, say)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def submit(self, texts: list, key: Hashable = ()) -> list:
        """The results for `texts`, from the call their batch is part of; `QueueFull` at once
        when `queue_size` requests are waiting; the model call's exception when it failed."""
        if self._queue is None or self._collector is None or self._collector.done():
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        job = _Job(list(texts), key, loop.create_future(), loop.time())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(f"the queue is full ({self.queue_size} request(s) waiting for the model)") from None
        return await job.future

    async def close(self) -> None:
        """Answer every request queued, then stop the collector and the worker thread."""
        if self._collector is not None and not self._collector.done():
            await self._queue.put(_STOP)
            await self._collector
        self._executor.shutdown(wait=True)

    async def _next(self, timeout: Optional[float]):
        """The next queued item: at once when one is there, else waiting up to `timeout` (None: no limit)."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first, self._carry = (self._carry if self._carry is not None else await self._next(None)), None
            if first is _STOP:
                return
            batch, count = [first], len(first.texts)
            # Wait for others only while requests come from several clients (the last batch held more than
            # one): a lone client is answered at once instead of waiting `max_wait_ms` for nobody.
            wait = self.max_wait if self._last_batch > 1 else 0.0
            while count < self.max_batch_texts:
                job = await self._next(first.arrived + wait - loop.time())
                if job is None:
                    break
                if job is _STOP or count + len(job.texts) > self.max_batch_texts:
                    self._carry = job
                    break
                batch.append(job)
                count += len(job.texts)
            self._last_batch = len(batch)
            groups: dict = {}
            for job in batch:
                if not job.future.done():  # a client that went away is not predicted for
                    groups.setdefault(job.key, []).append(job)
            for key, jobs in groups.items():
                await self._call(key, jobs)

    async def _call(self, key, jobs: list) -> None:
        texts = [text for job in jobs for text in job.texts]
        started = time.perf_counter()
        try:
            results = await self.in_worker(self._predict, key, texts)
            if len(results) != len(texts):
                raise RuntimeError(f"the model call gave {len(results)} results for {len(texts)} texts")
        except Exception as error:  # every request of the call is told; the server goes on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            if self.metrics is not None:
                self.metrics.model_seconds.observe(time.perf_counter() - started)
        if self.metrics is not None:
            self.metrics.batch_texts.observe(len(texts))
            self.metrics.batch_requests.observe(len(jobs))
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            if not job.future.done():
                job.future.set_result(results[start:end])
            start = end
