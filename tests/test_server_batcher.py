"""Searches merged by the service's batcher give each request exactly its own answer."""

import asyncio
import threading

import numpy as np
import pytest

import adanns
from adanns.server.batcher import MAX_BATCH, SearchBatcher
from adanns.server.collection import Collection, Config
from adanns.server.errors import Invalid


@pytest.fixture
def collection(tmp_path, rng):
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    c = Collection.create(tmp_path, Config.resolve(32, "ip", "ivf", {"nlist": 16, "train_size": 3000}), 10_000)
    c.upsert(np.arange(3000), x)
    yield c, rng.standard_normal((40, 32)).astype(np.float32)
    c.close(snapshot=False)


def _gather(collection, queries, workers=2, **knobs):
    async def run():
        batcher = SearchBatcher(workers)
        try:
            calls = [batcher.search(collection, collection.check_queries(q[None, :]), 10, 1, **knobs) for q in queries]
            return await asyncio.gather(*calls, return_exceptions=True), batcher
        finally:
            batcher.close()
    return asyncio.run(run())


class Recorder:
    """A stand-in collection: records the size of each native call, can hold the first call until released,
    and answers query i with the id queries[i, 0] (so a misrouted row shows)."""

    def __init__(self):
        self.sizes, self.release, self.started = [], threading.Event(), threading.Event()

    def search_checked(self, queries, k, threads, **knobs):
        self.sizes.append(len(queries))
        self.started.set()
        self.release.wait(10)
        ids = np.repeat(queries[:, :1].astype(np.int64), k, axis=1)
        return adanns.SearchResult(np.zeros(ids.shape, np.float32), ids, np.ones(len(queries)))


def _row(i):
    return np.full((1, 4), i, np.float32)


async def _while_busy(recorder, batcher, then, **knobs):
    """Starts request 0, waits until its call holds the only thread, runs ``then()``, releases the thread."""
    first = asyncio.ensure_future(batcher.search(recorder, _row(0), 3, 1, **knobs))
    while not recorder.started.is_set():
        await asyncio.sleep(0.001)
    waiting = await then()
    recorder.release.set()
    return [await first, *[await w for w in waiting if not w.cancelled()]]


def test_concurrent_requests_get_their_own_results(collection):
    c, queries = collection
    knobs = dict(nprobe=4, search_dim=16, rerank_dim=32, rerank_k=30)
    merged, batcher = _gather(c, queries, **knobs)
    # All 40 arrived in one turn of the event loop: two batches of 15 left at once, the last 10 when a thread freed.
    assert (batcher.calls, batcher.merged_requests) == (3, 40)
    for q, got in zip(queries, merged):
        alone = c.search(q[None, :], 10, 1, **knobs)
        np.testing.assert_array_equal(got.ids, alone.ids)
        np.testing.assert_array_equal(got.scores, alone.scores)
        np.testing.assert_array_equal(got.mflops, alone.mflops)
    assert len(queries) > MAX_BATCH  # the requests needed more than one batch


def test_an_error_reaches_every_request_of_the_batch(collection):
    c, queries = collection
    results, _ = _gather(c, queries[:5], nprobe=4, search_dim=64)  # search_dim beyond the query length
    assert all(isinstance(r, Invalid) and "search_dim" in str(r) for r in results)


def test_searches_that_wait_for_a_busy_thread_leave_together():
    recorder = Recorder()

    async def run():
        batcher = SearchBatcher(1)

        async def arrive_one_by_one():
            waiting = []
            for i in range(1, 6):  # each in its own turn of the event loop
                waiting.append(asyncio.ensure_future(batcher.search(recorder, _row(i), 3, 1, nprobe=2)))
                await asyncio.sleep(0.002)
            return waiting

        try:
            return await _while_busy(recorder, batcher, arrive_one_by_one, nprobe=2)
        finally:
            batcher.close()

    results = asyncio.run(run())
    assert recorder.sizes == [1, 5]
    assert [r.ids.tolist() for r in results] == [[[i] * 3] for i in range(6)]


def test_searches_with_an_unhashable_knob_run_alone():
    recorder = Recorder()
    recorder.release.set()

    async def run():
        batcher = SearchBatcher(1)
        try:
            return await asyncio.gather(*(batcher.search(recorder, _row(i), 3, 1, filter={"must": [i]})
                                          for i in range(4)))
        finally:
            batcher.close()

    results = asyncio.run(run())
    assert recorder.sizes == [1, 1, 1, 1]
    assert [r.ids[0, 0] for r in results] == [0, 1, 2, 3]


def test_a_cancelled_search_leaves_the_others_their_answers():
    recorder = Recorder()

    async def run():
        batcher = SearchBatcher(1)

        async def cancel_one():
            gone = asyncio.ensure_future(batcher.search(recorder, _row(1), 3, 1))
            kept = asyncio.ensure_future(batcher.search(recorder, _row(2), 3, 1))
            await asyncio.sleep(0.002)
            gone.cancel()
            await asyncio.sleep(0.002)
            return [gone, kept]

        try:
            return await _while_busy(recorder, batcher, cancel_one)
        finally:
            batcher.close()

    results = asyncio.run(run())
    assert [r.ids[0, 0] for r in results] == [0, 2]


def test_a_batch_whose_clients_all_left_is_not_searched():
    recorder = Recorder()

    async def run():
        batcher = SearchBatcher(1)

        async def cancel_all():
            gone = [asyncio.ensure_future(batcher.search(recorder, _row(i), 3, 1)) for i in (1, 2)]
            await asyncio.sleep(0.002)
            for g in gone:
                g.cancel()
            await asyncio.sleep(0.002)
            return gone

        try:
            results = await _while_busy(recorder, batcher, cancel_all)
            await asyncio.sleep(0.05)
            return results, batcher.calls
        finally:
            batcher.close()

    results, calls = asyncio.run(run())
    assert recorder.sizes == [1] and calls == 1 and results[0].ids[0, 0] == 0


def test_no_search_threads_is_refused():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        SearchBatcher(0)


def test_the_service_refuses_zero_search_workers(tmp_path):
    from adanns.server.config import Settings

    with pytest.raises(ValueError, match="search_workers must be >= 1"):
        Settings(data_dir=tmp_path, search_workers=0)
