"""Merges searches that arrive together into one native call.

Under concurrent load many single-query requests for the same index wait at the same moment. Each
would cost a hand-off to the worker pool and a scan of its own; merged, they cost one hand-off, and
the IVF scan reads each probed list once for all of them. Requests are merged only when they are
interchangeable: same index, same knobs, same query length. Every query's result is the one it
would get alone (the core scores each query-row pair the same way in any batch), and a merged batch
stays below the size at which a flat index switches to its GEMM kernel, so not even rounding changes.
"""

from __future__ import annotations

import asyncio
from functools import partial

import numpy as np

# Below FlatIndex's GEMM threshold (16 queries): see the module docstring.
MAX_BATCH = 15


class SearchBatcher:
    def __init__(self, pool):
        self._pool = pool
        self._open: dict[tuple, list] = {}

    async def search(self, collection, queries: np.ndarray, k: int, threads: int, **knobs):
        """``collection.search_checked`` for ``queries`` (already checked), possibly merged with others."""
        loop = asyncio.get_running_loop()
        key = (id(collection), queries.shape[1], k, threads, tuple(sorted(knobs.items())))
        batch = self._open.get(key)
        if batch is None or sum(len(q) for q, _ in batch) + len(queries) > MAX_BATCH:
            batch = self._open[key] = []
            # Runs after the requests that are ready in this turn of the event loop have joined.
            loop.call_soon(self._flush, key, batch, collection, k, threads, knobs)
        future = loop.create_future()
        batch.append((queries, future))
        return await future

    def _flush(self, key, batch, collection, k, threads, knobs) -> None:
        if self._open.get(key) is batch:
            del self._open[key]
        stacked = batch[0][0] if len(batch) == 1 else np.concatenate([q for q, _ in batch])
        job = asyncio.get_running_loop().run_in_executor(
            self._pool, partial(collection.search_checked, stacked, k, threads, **knobs))
        job.add_done_callback(partial(_deliver, batch))


def _deliver(batch, job) -> None:
    error = job.exception()
    start = 0
    for queries, future in batch:
        if future.cancelled():
            start += len(queries)
            continue
        if error is not None:
            future.set_exception(error)
            continue
        res = job.result()
        end = start + len(queries)
        future.set_result(type(res)(res.scores[start:end], res.ids[start:end], res.mflops[start:end]))
        start = end
