"""Searches merged by the service's batcher give each request exactly its own answer."""

import asyncio
import numpy as np
import pytest

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
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            batcher.close()
    return asyncio.run(run())


def test_concurrent_requests_get_their_own_results(collection):
    c, queries = collection
    knobs = dict(nprobe=4, search_dim=16, rerank_dim=32, rerank_k=30)
    merged = _gather(c, queries, **knobs)
    for q, got in zip(queries, merged):
        alone = c.search(q[None, :], 10, 1, **knobs)
        np.testing.assert_array_equal(got.ids, alone.ids)
        np.testing.assert_array_equal(got.scores, alone.scores)
        np.testing.assert_array_equal(got.mflops, alone.mflops)
    assert len(queries) > MAX_BATCH  # the requests needed more than one batch


def test_an_error_reaches_every_request_of_the_batch(collection):
    c, queries = collection
    results = _gather(c, queries[:5], nprobe=4, search_dim=64)  # search_dim beyond the query length
    assert all(isinstance(r, Invalid) and "search_dim" in str(r) for r in results)
