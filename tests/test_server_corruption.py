"""Corruption of every file of a collection (bit flips, truncation, deletion) is detected, reported and
contained: that index is `failed` with the reason, its files are left untouched, the other indexes serve,
and `adanns repair` recovers explicitly, reporting what it skips."""

from __future__ import annotations

import hashlib
import json
import zlib

import numpy as np
import pytest

from adanns.server.collection import Config
from adanns.server.repair import RepairError, repair
from adanns.server.store import Store
from adanns.server.wal import Op, Record, encode

from _server import Server

DIM = 8


def unit_rows(rng, n, d=DIM):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(data_dir, rng, kind="ivf"):
    """Two collections, each with a snapshot and six log records after it."""
    store = Store(data_dir, snapshot_every=1000)
    vectors = {}
    for name in ("good", "bad"):
        params = {"nlist": 2, "train_size": 40} if kind == "ivf" else {}
        c, _ = store.create(name, Config.resolve(DIM, "ip", kind, params))
        x = unit_rows(rng, 60)
        c.upsert(np.arange(60), x)
        c._snapshot()
        for b in range(6):
            xb = unit_rows(rng, 5)
            c.upsert(np.arange(100 + 5 * b, 105 + 5 * b), xb)
            x = np.concatenate([x, xb])
        vectors[name] = x
    # No close: a close would snapshot and empty the logs.
    for name in ("good", "bad"):
        store.get(name)._wal.close()
    return vectors


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def snapshot_dir(folder):
    return next(p for p in folder.iterdir() if p.name.startswith("snapshot-"))


def flip(path, at):
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 1 << (at % 8)
    path.write_bytes(bytes(data))


def wal_frame_offsets(path):
    data, offs, off = path.read_bytes(), [], 0
    while off < len(data):
        offs.append(off)
        off += 8 + int.from_bytes(data[off:off + 4], "little")
    return offs


def _damage(folder, how, rng):
    snap = snapshot_dir(folder)
    if how == "meta.json flipped":
        flip(folder / "meta.json", int(rng.integers(0, (folder / "meta.json").stat().st_size)))
    elif how == "meta.json truncated":
        data = (folder / "meta.json").read_bytes()
        (folder / "meta.json").write_bytes(data[: int(rng.integers(0, len(data)))])
    elif how == "meta.json deleted":
        (folder / "meta.json").unlink()
    elif how == "snapshot deleted":
        for f in snap.iterdir():
            f.unlink()
        snap.rmdir()
    elif how in ("index.adanns flipped", "ids.npy flipped"):
        f = snap / how.split()[0]
        flip(f, int(rng.integers(0, f.stat().st_size)))
    elif how in ("index.adanns truncated", "ids.npy truncated"):
        f = snap / how.split()[0]
        f.write_bytes(f.read_bytes()[: int(rng.integers(0, f.stat().st_size))])
    elif how in ("index.adanns deleted", "ids.npy deleted"):
        (snap / how.split()[0]).unlink()
    elif how == "ids.npy altered, crc kept":  # a changed id: caught by the CRC in meta.json
        ids = np.load(snap / "ids.npy")
        ids[0] = 10**9
        np.save(snap / "ids.npy", ids)
    elif how == "wal.log deleted":
        (folder / "wal.log").unlink()
    elif how == "mid-log flip":
        wal = folder / "wal.log"
        offs = wal_frame_offsets(wal)
        flip(wal, int(rng.integers(offs[2], offs[3])))  # inside the third of six records
    elif how == "unapplicable record":  # intact and checksummed, but removes an id the index never held
        with open(folder / "wal.log", "ab") as f:
            f.write(encode(Record(Op.REMOVE, 8, np.array([99999]), np.zeros((0, 0), np.float32))))
    elif how == "sequence gap":
        with open(folder / "wal.log", "ab") as f:
            f.write(encode(Record(Op.UPSERT, 12, np.array([777]), unit_rows(rng, 1))))
    else:
        raise AssertionError(how)


DAMAGE = ["meta.json flipped", "meta.json truncated", "meta.json deleted", "snapshot deleted",
          "index.adanns flipped", "index.adanns truncated", "index.adanns deleted", "ids.npy flipped",
          "ids.npy truncated", "ids.npy deleted", "ids.npy altered, crc kept", "wal.log deleted", "mid-log flip",
          "unapplicable record", "sequence gap"]


@pytest.mark.parametrize("how", DAMAGE)
def test_damage_fails_that_index_only_and_touches_nothing(tmp_path, rng, how):
    vectors = build(tmp_path, rng)
    bad = tmp_path / "bad"
    _damage(bad, how, rng)
    before = digest(bad)
    store = Store(tmp_path)
    try:
        c = store.get("bad")
        assert c.state == "failed", how
        assert c.reason
        assert store.states()["bad"]["state"] == "failed"
        with pytest.raises(Exception) as e:
            c.check_queries(unit_rows(rng, 1))
        assert getattr(e.value, "status", None) == 503
        with pytest.raises(Exception) as e:
            c.upsert(np.arange(1), unit_rows(rng, 1))
        assert getattr(e.value, "status", None) == 503
        good = store.get("good")
        assert good.state == "ready"
        res = good.search(vectors["good"], k=1, threads=1, nprobe=2)
        assert (res.ids[:, 0] == np.concatenate([np.arange(60), np.arange(100, 130)])).all()
    finally:
        store.close()
    assert digest(bad) == before, "a failed index's files are left untouched"


def test_repair_salvages_the_records_after_a_mid_log_corruption(tmp_path, rng):
    vectors = build(tmp_path, rng)
    _damage(tmp_path / "bad", "mid-log flip", rng)
    report = repair(tmp_path / "bad")
    text = "\n".join(report)
    assert "skipped wal.log bytes" in text and "records 4..4 are missing" in text, text
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("bad.before-repair-")]
    assert len(backups) == 1
    store = Store(tmp_path)
    try:
        c = store.get("bad")
        assert c.state == "ready"
        lost = set(range(110, 115))  # the third record after the snapshot
        want = [i for i in list(range(60)) + list(range(100, 130)) if i not in lost]
        assert sorted(c._ids) == want
        keep = np.array([i not in lost for i in list(range(60)) + list(range(100, 130))])
        res = c.search(vectors["bad"][keep], k=1, threads=1, nprobe=2)
        assert res.ids[:, 0].tolist() == want
    finally:
        store.close()


def test_repair_skips_an_unapplicable_record_and_says_so(tmp_path, rng):
    build(tmp_path, rng)
    _damage(tmp_path / "bad", "unapplicable record", rng)
    report = "\n".join(repair(tmp_path / "bad"))
    assert "skipped the remove record 8" in report and "99999" in report, report
    store = Store(tmp_path)
    try:
        assert store.get("bad").state == "ready" and len(store.get("bad")._ids) == 90
    finally:
        store.close()


def test_repair_of_a_damaged_snapshot_needs_an_explicit_discard(tmp_path, rng):
    build(tmp_path, rng)
    _damage(tmp_path / "bad", "index.adanns flipped", rng)
    with pytest.raises(RepairError, match="--discard-snapshot"):
        repair(tmp_path / "bad")
    report = "\n".join(repair(tmp_path / "bad", discard_snapshot=True))
    assert "discarded the snapshot" in report
    store = Store(tmp_path)
    try:
        assert store.get("bad").state == "ready" and sorted(store.get("bad")._ids) == list(range(100, 130))
    finally:
        store.close()


def test_a_failed_index_over_http_other_indexes_serve(tmp_path, rng):
    vectors = build(tmp_path / "data", rng, kind="flat")
    _damage(tmp_path / "data" / "bad", "mid-log flip", rng)
    with Server(tmp_path / "data") as server, server.client() as c:
        listing = c.get("/indexes").json()
        assert listing["states"]["bad"]["state"] == "failed" and listing["states"]["good"]["state"] == "ready"
        info = c.get("/indexes/bad").json()
        assert info["state"] == "failed" and "intact records follow" in info["reason"]
        q = {"vector": vectors["good"][0].tolist(), "k": 1}
        for method, path, body in [("POST", "/indexes/bad/search", q),
                                   ("POST", "/indexes/bad/vectors", {"ids": [1], "vectors": [[0.5] * DIM]}),
                                   ("DELETE", "/indexes/bad/vectors", {"ids": [1]}),
                                   ("POST", "/indexes/bad/train", None),
                                   ("POST", "/indexes/bad/tune", {"vectors": [[0.5] * DIM]})]:
            r = c.request(method, path, json=body)
            assert r.status_code == 503 and "failed" in r.json()["detail"], (path, r.status_code, r.text)
        assert c.put("/indexes/bad", json={"dim": DIM, "kind": "flat"}).status_code == 409
        assert c.post("/indexes/good/search", json=q).json()["results"][0]["ids"] == [0]
        assert c.delete("/indexes/bad").status_code == 204  # an operator may drop it
        assert "bad" not in c.get("/indexes").json()["indexes"]


def test_meta_json_checksum_covers_its_content(tmp_path, rng):
    build(tmp_path, rng, kind="flat")
    meta = json.loads((tmp_path / "bad" / "meta.json").read_text())
    meta["seq"] += 1  # valid JSON, wrong content
    (tmp_path / "bad" / "meta.json").write_text(json.dumps(meta))
    store = Store(tmp_path)
    try:
        assert store.get("bad").state == "failed" and "checksum" in store.get("bad").reason
    finally:
        store.close()
    assert zlib.crc32(b"") == 0


@pytest.mark.parametrize("config", [{"dim": 8, "metric": "ip", "kind": "flat", "params": {}, "extra": 1},
                                    {"dim": "x", "metric": "ip", "kind": "flat", "params": {}},
                                    {"dim": 8, "metric": "ip", "kind": "nope", "params": {}}, "not a dict"])
def test_a_meta_json_with_a_valid_crc_but_a_bad_config_fails_that_index_only(tmp_path, rng, config):
    build(tmp_path, rng, kind="flat")
    meta = json.loads((tmp_path / "bad" / "meta.json").read_text())
    body = {k: v for k, v in meta.items() if k != "crc32"}
    body["config"] = config
    body["crc32"] = zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    (tmp_path / "bad" / "meta.json").write_text(json.dumps(body))
    store = Store(tmp_path)
    try:
        assert store.get("bad").state == "failed" and store.get("bad").reason
        assert store.get("bad").info()["state"] == "failed"
        assert store.get("good").state == "ready"
    finally:
        store.close()
