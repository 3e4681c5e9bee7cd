"""Durability: acknowledged writes survive SIGKILL; a torn log tail is dropped with a warning."""

from __future__ import annotations

import threading

import httpx
import numpy as np

import pytest

from adanns.server.wal import LogCorrupt, Op, Record, encode, read

from _server import Server

DIM, NLIST, BATCH = 16, 4, 10


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def found_ids(client, name, vectors, **knobs) -> list[int]:
    """Top-1 id of each vector; searched exhaustively, a stored vector finds itself."""
    found = []
    for a in range(0, len(vectors), 200):
        r = client.post(f"/indexes/{name}/search", json={"vectors": vectors[a:a + 200].tolist(), "k": 1, **knobs})
        assert r.status_code == 200, r.text
        found += [h["ids"][0] for h in r.json()["results"]]
    return found


def test_acknowledged_adds_survive_sigkill_mid_stream(tmp_path, rng):
    x = unit_rows(rng, 4000, DIM)
    acked, in_flight = [], {}
    lock, enough = threading.Lock(), threading.Event()
    # Snapshots every 7 writes and training at 100 vectors both happen inside the stream.
    server = Server(tmp_path / "data", extra_args=["--snapshot-every", "7"]).start()
    with server.client() as c:
        c.put("/indexes/crash", json={"dim": DIM, "kind": "ivf", "params": {"nlist": NLIST, "train_size": 100}})

    def writer(first_batch, step):
        with server.client() as c:
            for b in range(first_batch, len(x) // BATCH, step):
                ids = list(range(b * BATCH, (b + 1) * BATCH))
                with lock:
                    in_flight[first_batch] = ids
                try:
                    r = c.post("/indexes/crash/vectors", json={"ids": ids, "vectors": x[ids].tolist()})
                except httpx.TransportError:
                    return  # the server died under this request: it was never acknowledged
                assert r.status_code == 200, r.text
                with lock:
                    acked.extend(ids)
                    del in_flight[first_batch]
                    if len(acked) >= 600:
                        enough.set()

    threads = [threading.Thread(target=writer, args=(i, 2)) for i in range(2)]
    for t in threads:
        t.start()
    assert enough.wait(60), server.log()
    server.kill()
    for t in threads:
        t.join()
    assert len(acked) < len(x)  # the kill really came mid-stream

    with Server(tmp_path / "data") as again, again.client() as c:
        info = c.get("/indexes/crash").json()
        assert info["trained"] is True
        # An unacknowledged request may or may not have reached the log; nothing else may differ.
        unacked = sorted(i for ids in in_flight.values() for i in ids)
        assert len(acked) <= info["count"] <= len(acked) + len(unacked)
        acked_ids = np.array(sorted(acked))
        assert found_ids(c, "crash", x[acked_ids], nprobe=NLIST) == acked_ids.tolist()


def test_a_torn_log_tail_is_dropped_with_a_warning(tmp_path, rng):
    x = unit_rows(rng, 60, DIM)
    server = Server(tmp_path / "data").start()
    with server.client() as c:
        c.put("/indexes/torn", json={"dim": DIM, "kind": "flat"})
        for a in range(0, 60, 20):
            assert c.post("/indexes/torn/vectors", json={"ids": list(range(a, a + 20)),
                                                          "vectors": x[a:a + 20].tolist()}).status_code == 200
    server.kill()
    wal = tmp_path / "data" / "torn" / "wal.log"
    frame = encode(Record(Op.UPSERT, 99, np.arange(100, 120), unit_rows(rng, 20, DIM)))
    with open(wal, "ab") as f:
        f.write(frame[: len(frame) // 2])  # a crash in the middle of an append
    with Server(tmp_path / "data") as again, again.client() as c:
        assert c.get("/indexes/torn").json()["count"] == 60
        assert found_ids(c, "torn", x) == list(range(60))
        # Writes after the repair land after the last good record, not after the garbage.
        c.post("/indexes/torn/vectors", json={"ids": [500], "vectors": x[:1].tolist()})
        log = again.log()
    assert "torn record" in log
    with Server(tmp_path / "data") as third, third.client() as c:
        assert c.get("/indexes/torn").json()["count"] == 61


def test_a_corrupt_record_with_intact_ones_after_it_is_reported_not_truncated(tmp_path, rng):
    path = tmp_path / "wal.log"
    records = [Record(Op.UPSERT, s, np.array([s]), unit_rows(rng, 1, 4)) for s in range(1, 5)]
    frames = [encode(r) for r in records]
    damaged = bytearray(frames[2])
    damaged[-1] ^= 0xFF  # one flipped bit in the third record's payload
    original = frames[0] + frames[1] + bytes(damaged) + frames[3]
    path.write_bytes(original)
    with pytest.raises(LogCorrupt, match=f"bytes {len(frames[0]) + len(frames[1])}-"):
        read(path)
    assert path.read_bytes() == original  # left untouched for inspection and `adanns repair`


def test_a_bad_last_record_is_a_torn_tail_and_is_cut_off(tmp_path, rng):
    path = tmp_path / "wal.log"
    records = [Record(Op.UPSERT, s, np.array([s]), unit_rows(rng, 1, 4)) for s in range(1, 4)]
    frames = [encode(r) for r in records]
    damaged = bytearray(frames[2])
    damaged[-1] ^= 0xFF
    path.write_bytes(frames[0] + frames[1] + bytes(damaged))
    got = read(path)
    assert [r.seq for r in got] == [1, 2]
    np.testing.assert_array_equal(got[1].vectors, records[1].vectors)
    assert path.stat().st_size == len(frames[0]) + len(frames[1])
    assert read(tmp_path / "absent.log") == []
