"""Storage faults: an injected failure at every write and fsync of the log and of the snapshot path, then
more writes, a crash and a restart; a crash at every step of snapshot, tune and compaction; a real
file-size limit (RLIMIT_FSIZE) under the HTTP service. Each asserts that every acknowledged write is
present after the restart and no rejected one is."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from adanns.server import faults
from adanns.server.collection import Config
from adanns.server.errors import ApiError, StorageFull, Unavailable
from adanns.server.store import Store

from _server import Server

DIM = 8


def unit_rows(rng, n, d=DIM):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def no_faults_left():
    yield
    faults.configure(None)


def stored(data_dir, name="c") -> dict[int, np.ndarray]:
    """id -> vector of what a fresh open of the data directory holds (exact top-1 of each stored vector)."""
    store = Store(data_dir, snapshot_every=1 << 30)
    try:
        c = store.get(name)
        assert c.state == "ready", c.reason
        ids = sorted(c._ids)
        return {i: c._buffer[i] if c._buffer_active else None for i in ids}
    finally:
        store.close()


def check_vectors_found(data_dir, acked: dict[int, np.ndarray], name="c"):
    """Every acknowledged vector is in the index under its id (exact search finds it first)."""
    store = Store(data_dir, snapshot_every=1 << 30)
    try:
        c = store.get(name)
        ids = np.array(sorted(acked), np.int64)
        q = np.stack([acked[i] for i in ids.tolist()])
        knobs = {"nprobe": c.config.params["nlist"]} if c.config.kind == "ivf" and not c._buffer_active else {}
        res = c.search(q, k=1, threads=1, **knobs)
        np.testing.assert_array_equal(res.ids[:, 0], ids)
    finally:
        store.close()


def write_batches(c, rng, batches, first_id, acked, rejected, size=5):
    for b in range(batches):
        ids = np.arange(first_id + b * size, first_id + (b + 1) * size)
        x = unit_rows(rng, size)
        try:
            c.upsert(ids, x)
        except ApiError as e:
            assert e.status in (503, 507), e.detail
            rejected.update(ids.tolist())
        else:
            acked.update(zip(ids.tolist(), x))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
@pytest.mark.parametrize("point,error", [("wal.write", "ENOSPC"), ("wal.write", "EIO"), ("wal.fsync", "EIO"),
                                         ("wal.fsync", "ENOSPC")])
def test_a_failed_append_is_cut_back_and_later_writes_survive(tmp_path, rng, kind, point, error):
    store = Store(tmp_path, snapshot_every=4)
    params = {"nlist": 2, "train_size": 12} if kind == "ivf" else {}
    c, _ = store.create("c", Config.resolve(DIM, "ip", kind, params))
    acked, rejected = {}, set()
    nth = int(rng.integers(1, 6))
    faults.configure(f"{point}={nth}:{error}")
    write_batches(c, rng, 8, 0, acked, rejected)
    assert len(rejected) == 5, "exactly the planned append failed"
    size = (tmp_path / "c" / "wal.log").stat().st_size
    faults.configure(f"{point}=1+:{error}")  # a disk that stays broken: every write is refused, nothing is kept
    write_batches(c, rng, 3, 100, acked, rejected)
    assert (tmp_path / "c" / "wal.log").stat().st_size == size
    faults.configure(None)
    write_batches(c, rng, 3, 200, acked, rejected)
    assert c.state == "ready"
    # No close: the restart below sees exactly what a kill -9 would leave.
    held = stored(tmp_path)
    assert set(held) == set(acked) and not (set(held) & rejected)
    check_vectors_found(tmp_path, acked)


def test_error_classes_and_messages(tmp_path, rng):
    store = Store(tmp_path)
    c, _ = store.create("c", Config.resolve(DIM, "ip", "flat", {}))
    faults.configure("wal.write=1:ENOSPC")
    with pytest.raises(StorageFull, match="No space left on device.*nothing was written"):
        c.upsert(np.arange(3), unit_rows(rng, 3))
    faults.configure("wal.fsync=1:EIO")
    with pytest.raises(Unavailable, match="Input/output error.*nothing was written"):
        c.upsert(np.arange(3), unit_rows(rng, 3))
    faults.configure(None)
    assert c.upsert(np.arange(3), unit_rows(rng, 3)).tolist() == [0, 1, 2]


def test_a_log_that_cannot_be_cut_back_makes_the_index_read_only(tmp_path, rng):
    store = Store(tmp_path, snapshot_every=1000)
    c, _ = store.create("c", Config.resolve(DIM, "ip", "flat", {}))
    acked, rejected = {}, set()
    write_batches(c, rng, 2, 0, acked, rejected)
    faults.configure("wal.write=1:EIO,wal.rollback=1:EIO")
    write_batches(c, rng, 1, 10, acked, rejected)  # half a frame stays in the log
    faults.configure(None)
    assert c.state == "read-only" and "could not be cut back" in c.reason
    with pytest.raises(Unavailable, match="read-only"):
        c.upsert(np.arange(50, 52), unit_rows(rng, 2))
    assert c.search(unit_rows(rng, 1), k=1, threads=1).ids.shape == (1, 1)  # searches go on
    held = stored(tmp_path)  # the restart drops the torn half frame
    assert set(held) == set(acked) and not (set(held) & rejected)


@pytest.mark.parametrize("point", ["snapshot.write", "snapshot.fsync", "snapshot.rename", "meta.write",
                                   "meta.rename", "wal.reset", "snapshot.cleanup"])
def test_a_failed_snapshot_loses_no_acknowledged_write(tmp_path, rng, point):
    store = Store(tmp_path, snapshot_every=3)
    c, _ = store.create("c", Config.resolve(DIM, "ip", "ivf", {"nlist": 2, "train_size": 12}))
    acked, rejected = {}, set()
    faults.configure(f"{point}=1+:ENOSPC")
    write_batches(c, rng, 10, 0, acked, rejected)  # snapshots come due and fail; the writes stand
    assert not rejected
    faults.configure(None)
    write_batches(c, rng, 4, 100, acked, rejected)  # a later snapshot succeeds
    assert set(stored(tmp_path)) == set(acked)
    check_vectors_found(tmp_path, acked)


def test_a_tune_whose_snapshot_fails_changes_nothing(tmp_path, rng):
    store = Store(tmp_path, snapshot_every=1000)
    c, _ = store.create("c", Config.resolve(DIM, "ip", "ivf", {"nlist": 4, "train_size": 200}))
    c.upsert(np.arange(400), unit_rows(rng, 400))
    faults.configure("meta.rename=1:ENOSPC")
    with pytest.raises(StorageFull):
        c.tune(unit_rows(rng, 20), k=5, threads=1)
    faults.configure(None)
    with pytest.raises(ApiError, match="not tuned|tune"):
        c.search(unit_rows(rng, 2), k=5, threads=1, target_recall=0.9)
    c.tune(unit_rows(rng, 20), k=5, threads=1)
    assert c.search(unit_rows(rng, 2), k=5, threads=1, target_recall=0.9).ids.shape == (2, 5)


# ------------------------------------------------------------------------------ crashes at every step
_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from adanns.server import faults
    from adanns.server.store import Store
    data_dir, spec, scenario, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = np.random.default_rng(seed)
    store = Store(data_dir, snapshot_every=3)
    c = store.get("c")
    def batch(first):
        x = rng.standard_normal((5, 8)).astype(np.float32)
        return np.arange(first, first + 5), x / np.linalg.norm(x, axis=1, keepdims=True)
    def upsert(first):
        ids, x = batch(first)
        print(json.dumps({"pending": ids.tolist(), "x": x.tolist()}), flush=True)
        c.upsert(ids, x)
        print(json.dumps({"acked": ids.tolist()}), flush=True)
    if scenario == "writes":   # snapshots every 3 writes, training at 40 vectors: the fault hits inside the stream
        faults.configure(spec)
        for b in range(14):
            upsert(1000 + 5 * b)
    else:                      # train, then tune twice with no write between (same sequence number), then compaction
        for b in range(5):
            upsert(3000 + 5 * b)
        faults.configure(spec)
        c.tune(rng.standard_normal((10, 8)).astype(np.float32), k=3, threads=1)
        c.tune(rng.standard_normal((10, 8)).astype(np.float32), k=3, threads=1)
        for b in range(4):
            upsert(2000 + 5 * b)
    print(json.dumps({"done": True}), flush=True)
""")


def _seed_collection(data_dir, rng) -> dict[int, np.ndarray]:
    store = Store(data_dir, snapshot_every=3)
    c, _ = store.create("c", Config.resolve(DIM, "ip", "ivf", {"nlist": 2, "train_size": 40}))
    x = unit_rows(rng, 20)  # fewer than train_size: the child's stream trains the index (the train switch)
    c.upsert(np.arange(20), x)
    store.close()
    return dict(zip(range(20), x))


@pytest.mark.parametrize("scenario", ["writes", "tune"])
@pytest.mark.parametrize("point", ["wal.write", "wal.fsync", "snapshot.write", "snapshot.fsync", "snapshot.rename",
                                   "meta.write", "meta.rename", "wal.reset", "snapshot.cleanup"])
def test_a_crash_at_any_step_leaves_a_state_that_loads_with_every_acknowledged_write(tmp_path, rng, point,
                                                                                      scenario):
    acked = _seed_collection(tmp_path, rng)
    nth = int(rng.integers(1, 3))
    child = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), f"{point}={nth}:crash", scenario,
                            str(int(rng.integers(1 << 31)))], capture_output=True, text=True, timeout=120)
    pending = {}
    for line in child.stdout.splitlines():
        msg = json.loads(line)
        if "pending" in msg:
            pending = dict(zip(msg["pending"], np.array(msg["x"], np.float32)))
        elif "acked" in msg:
            acked.update(pending)
            pending = {}
    if child.returncode != 137:
        assert child.returncode == 0 and '"done"' in child.stdout, child.stderr
        if scenario == "writes" and point.startswith("wal."):
            pytest.fail(f"the {point} fault never fired")
    held = stored(tmp_path)
    # A write that was in flight at the crash may or may not be there; nothing else may differ.
    assert set(acked) <= set(held) <= set(acked) | set(pending)
    check_vectors_found(tmp_path, acked)
    leftovers = [p.name for p in (tmp_path / "c").iterdir() if p.name.startswith(".tmp")]
    assert not leftovers


# ------------------------------------------------------------------------------ a real file-size limit
def test_a_file_size_limit_under_the_http_service_loses_nothing(tmp_path, rng):
    limit = 48 << 10

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    server = Server(tmp_path / "data", extra_args=["--snapshot-every", "100000"])
    real_popen = subprocess.Popen

    def popen(*a, **kw):  # the server process alone runs under the cap
        return real_popen(*a, preexec_fn=cap, **kw)

    subprocess.Popen = popen
    try:
        server.start()
    finally:
        subprocess.Popen = real_popen
    acked, rejected = {}, set()
    with server.client() as c:
        assert c.put("/indexes/c", json={"dim": DIM, "kind": "flat"}).status_code == 201
        for b in range(120):
            ids = list(range(b * 10, b * 10 + 10))
            x = unit_rows(rng, 10)
            r = c.post("/indexes/c/vectors", json={"ids": ids, "vectors": x.tolist()})
            if r.status_code == 200:
                acked.update(zip(ids, x))
            else:
                assert r.status_code == 507, r.text
                assert "File too large" in r.json()["detail"]
                rejected.update(ids)
        assert rejected and acked
        # Searches still work on a full disk.
        assert c.post("/indexes/c/search", json={"vector": unit_rows(rng, 1)[0].tolist(), "k": 3}).status_code == 200
    server.kill()
    with Server(tmp_path / "data") as again, again.client() as c:
        assert c.get("/indexes/c").json()["count"] == len(acked)
        ids = sorted(acked)
        r = c.post("/indexes/c/search", json={"vectors": np.stack([acked[i] for i in ids]).tolist(), "k": 1})
        assert [h["ids"][0] for h in r.json()["results"]] == ids


_CHILD_FSIZE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from adanns.server.errors import ApiError
    from adanns.server.store import Store
    data_dir, limit, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    store = Store(data_dir, snapshot_every=2)  # snapshots (index files, ids, meta.json) hit the limit too
    c = store.get("c")
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    for b in range(60):
        ids = np.arange(5000 + 5 * b, 5005 + 5 * b)
        x = rng.standard_normal((5, 8)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        try:
            c.upsert(ids, x)
            print(json.dumps({"acked": ids.tolist(), "x": x.tolist()}), flush=True)
        except ApiError as e:
            print(json.dumps({"rejected": ids.tolist(), "status": e.status}), flush=True)
    try:
        c.tune(rng.standard_normal((10, 8)).astype(np.float32), k=3, threads=1)
        print(json.dumps({"tuned": True}), flush=True)
    except ApiError as e:
        print(json.dumps({"tune_status": e.status}), flush=True)
""")


def test_a_real_file_size_limit_on_every_storage_write(tmp_path, rng):
    """RLIMIT_FSIZE makes every write past the limit fail with EFBIG: log appends, the core's index file,
    ids.npy, meta.json. Acknowledged writes survive, rejected ones are absent, the collection still loads."""
    acked = _seed_collection(tmp_path, rng)
    size = sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
    child = subprocess.run([sys.executable, "-c", _CHILD_FSIZE, str(tmp_path), str(max(size, 4096)),
                            str(int(rng.integers(1 << 31)))], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    rejected, statuses = set(), set()
    for line in child.stdout.splitlines():
        msg = json.loads(line)
        if "acked" in msg:
            acked.update(zip(msg["acked"], np.array(msg["x"], np.float32)))
        elif "rejected" in msg:
            rejected.update(msg["rejected"])
            statuses.add(msg["status"])
    assert rejected and statuses == {507}, child.stdout[-2000:]
    held = stored(tmp_path)
    assert set(held) == set(acked) and not (set(held) & rejected)
    check_vectors_found(tmp_path, acked)
