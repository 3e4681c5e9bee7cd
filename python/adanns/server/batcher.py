"""The service's search threads, and the merging of searches that wait for them into one native call.

A few dedicated threads (one per core by default) run the searches; the event loop keeps all the
bookkeeping, so no lock is taken on the way. A search that arrives while every thread is busy joins
a waiting batch, and a batch leaves as soon as a thread is free: under load, many single-query
requests cost one hand-off, one wake-up of the event loop and one native call (the IVF scan reads
each probed list once for all of them) instead of one each; an idle service answers a lone query at
once. This costs far less event-loop CPU per request than a ThreadPoolExecutor hand-off each.

Requests are merged only when they are interchangeable: same index, same knobs, same query length
(a request whose knobs cannot be compared, such as a filter, always runs alone). Every query's result
is the one it would get alone (the core scores each query-row pair the same way in any batch), and a
merged batch stays below the size at which a flat index switches to its GEMM kernel, so not even
rounding changes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque

import numpy as np

log = logging.getLogger("adanns.server")

# Below FlatIndex's GEMM threshold (16 queries): see the module docstring.
MAX_BATCH = 15


class _Batch:
    __slots__ = ("key", "collection", "k", "threads", "knobs", "parts", "size")

    def __init__(self, key, collection, k, threads, knobs):
        self.key, self.collection, self.k, self.threads, self.knobs = key, collection, k, threads, knobs
        self.parts: list[tuple[np.ndarray, asyncio.Future]] = []
        self.size = 0

    def run(self):
        queries = self.parts[0][0] if len(self.parts) == 1 else np.concatenate([q for q, _ in self.parts])
        return self.collection.search_checked(queries, self.k, self.threads, **self.knobs)


class SearchBatcher:
    """``await search(...)`` runs ``collection.search_checked`` on one of ``workers`` search threads, merged
    with the searches that wait with it. Use from one event loop; `close` stops the threads."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = workers
        self._waiting: deque[_Batch] = deque()  # in arrival order
        self._open: dict[tuple, _Batch] = {}    # merge key -> the waiting batch that can still grow
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatch_scheduled = False
        # Native calls and the requests they answered (shown in /metrics: their ratio is the mean merge).
        self.calls = self.merged_requests = 0
        self._threads = [threading.Thread(target=self._work, name=f"adanns-search-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    async def search(self, collection, queries: np.ndarray, k: int, threads: int, **knobs):
        """``collection.search_checked(queries, k, threads, **knobs)`` (queries already checked)."""
        loop = self._loop = self._loop or asyncio.get_running_loop()
        future = loop.create_future()
        key = (id(collection), queries.shape[1], k, threads, *sorted(knobs.items()))
        try:
            batch = self._open.get(key)
        except TypeError:  # a knob that cannot be hashed (a filter): never merged
            key, batch = None, None
        if batch is None or batch.size + len(queries) > MAX_BATCH:
            batch = _Batch(key, collection, k, threads, knobs)
            self._waiting.append(batch)
            if key is not None:
                self._open[key] = batch
        batch.parts.append((queries, future))
        batch.size += len(queries)
        if self._idle and not self._dispatch_scheduled:
            # After the requests that are ready in this turn of the event loop have joined.
            self._dispatch_scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    # ------------------------------------------------------------------ on the event loop
    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        while self._idle and self._waiting:
            batch = self._waiting.popleft()
            if batch.key is not None and self._open.get(batch.key) is batch:
                del self._open[batch.key]
            if all(f.done() for _, f in batch.parts):  # every client went away while it waited
                continue
            self._idle -= 1
            self.calls += 1
            self.merged_requests += len(batch.parts)
            self._jobs.put(batch)

    def _finished(self, batch: _Batch, result, error) -> None:
        self._idle += 1
        start = 0
        for queries, future in batch.parts:
            end = start + len(queries)
            if not future.done():  # a cancelled request (its client went away) takes nothing
                if error is not None:
                    future.set_exception(error)
                elif len(batch.parts) == 1:
                    future.set_result(result)
                else:
                    future.set_result(type(result)(result.scores[start:end], result.ids[start:end],
                                                   result.mflops[start:end]))
            start = end
        self._dispatch()

    # ------------------------------------------------------------------ on the search threads
    def _work(self) -> None:
        while True:
            batch = self._jobs.get()
            if batch is None:
                return
            result, error = None, None
            try:
                result = batch.run()
            except Exception as e:  # handed to every request of the batch
                error = e
            try:
                self._loop.call_soon_threadsafe(self._finished, batch, result, error)
            except RuntimeError:  # the loop is closed: nobody waits for this answer any more
                log.debug("search finished after the event loop closed")
