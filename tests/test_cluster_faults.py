"""Faults on the cluster: a killed shard replica is a 503 naming the shard (never a silently incomplete
answer) until Serve has restarted it; the new replica recovers every acknowledged write from its log. With two
copies per shard, reads go on from the surviving copy while the other restarts."""

from __future__ import annotations

import time

import numpy as np
import pytest

from adanns.cluster.shard import HOLD_FILE
from adanns.cluster.sharding import shard_of

from _cluster import ClusterServer, replica_actor
from test_server_api import unit_rows

pytestmark = pytest.mark.cluster


def _wait_for(c, path, body, deadline_s=90):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        r = c.post(path, json=body)
        if r.status_code == 200:
            return r
        assert r.status_code == 503, r.text
        time.sleep(0.2)
    raise AssertionError(f"{path} still unavailable after {deadline_s} s: {r.text}")


def _all_found(c, name, x, ids):
    r = c.post(f"/indexes/{name}/search", json={"vectors": x.tolist(), "k": 1})
    assert r.status_code == 200, r.text
    return [h["ids"][0] for h in r.json()["results"]] == ids.tolist()


def test_a_killed_shard_replica_is_a_503_naming_it_then_recovers_every_acknowledged_write(ray_cluster, tmp_path,
                                                                                           rng):
    import ray

    cluster = ClusterServer(tmp_path / "data", shards=2, timeout=2.0)
    x = unit_rows(rng, 240, 16)
    ids = np.arange(240) * 7
    with cluster.client() as c:
        assert c.put("/indexes/f", json={"dim": 16, "metric": "ip", "kind": "flat"}).status_code == 201
        for a in range(0, 240, 40):  # six acknowledged writes, in the log only (no snapshot yet)
            r = c.post("/indexes/f/vectors", json={"ids": ids[a:a + 40].tolist(), "vectors": x[a:a + 40].tolist()})
            assert r.status_code == 200, r.text
        hold = tmp_path / "data" / "shard-0" / "copy-0" / HOLD_FILE
        hold.touch()  # the restarted replica waits until the test removes it: a known outage
        ray.kill(replica_actor("shard-0-copy-0"), no_restart=True)
        r = c.post("/indexes/f/search", json={"vector": x[0].tolist(), "k": 3})
        assert r.status_code == 503 and "shard 0" in r.json()["detail"], r.text  # never a partial answer...
        r = c.post("/indexes/f/search", json={"vectors": x[:20].tolist(), "k": 5},
                   headers={"X-Adanns-Allow-Partial": "true"})  # ...unless the request asks, and it is marked
        assert r.status_code == 200 and r.headers["x-adanns-partial"] == "shards 0 unavailable", r.text
        got = np.array([h["ids"] for h in r.json()["results"]])
        on_one = ids[shard_of(ids, 2) == 1]
        want = np.argsort(-(x[:20].astype(np.float64) @ x[shard_of(ids, 2) == 1].T), axis=1, kind="stable")[:, :5]
        np.testing.assert_array_equal(got, on_one[want])  # the exact top-5 of shard 1's rows
        # A write that needs the down shard is refused before anything is written.
        extra = {"ids": list(range(10_000, 10_040)), "vectors": unit_rows(rng, 40, 16).tolist()}  # some on shard 0
        r = c.post("/indexes/f/vectors", json=extra)
        assert r.status_code == 503 and "shard 0" in r.json()["detail"] and "nothing was written" in r.text, r.text
        hold.unlink()
        _wait_for(c, "/indexes/f/search", {"vector": x[0].tolist(), "k": 3})
        info = c.get("/indexes/f").json()
        assert info["state"] == "ready" and info["count"] == 240  # every acknowledged write, nothing else
        assert _all_found(c, "f", x, ids)
        r = _wait_for(c, "/indexes/f/vectors", extra)
        assert r.json() == {"count": 40, "total": 280}
        r = c.post("/indexes/f/vectors", json={"ids": [5000], "vectors": x[:1].tolist()})
        assert r.status_code == 200, r.text


def test_with_two_copies_reads_survive_a_killed_copy_and_writes_wait_for_it(ray_cluster, tmp_path, rng):
    import ray

    cluster = ClusterServer(tmp_path / "data", shards=2, replicas=2, timeout=2.0)
    x = unit_rows(rng, 120, 8)
    ids = np.arange(120)
    with cluster.client() as c:
        c.put("/indexes/r", json={"dim": 8, "metric": "ip", "kind": "flat"})
        for a in range(0, 120, 30):
            assert c.post("/indexes/r/vectors", json={"ids": ids[a:a + 30].tolist(),
                                                      "vectors": x[a:a + 30].tolist()}).status_code == 200
        hold = tmp_path / "data" / "shard-1" / "copy-0" / HOLD_FILE
        hold.touch()
        ray.kill(replica_actor("shard-1-copy-0"), no_restart=True)
        for _ in range(4):  # reads go on from copy 1 of shard 1
            assert _all_found(c, "r", x, ids)
        # Writes to shard 1 need both copies: refused (nothing written) until copy 0 is back, then accepted.
        on_one = [int(i) for i in range(1000, 1100) if shard_of(np.array([i]), 2)[0] == 1][:1]
        body = {"ids": on_one, "vectors": x[:1].tolist()}
        r = c.post("/indexes/r/vectors", json=body)
        assert r.status_code == 503 and "shard 1" in r.json()["detail"], r.text
        hold.unlink()
        _wait_for(c, "/indexes/r/vectors", body)
        assert c.get("/indexes/r").json()["count"] == 121
        assert _all_found(c, "r", x, ids)
