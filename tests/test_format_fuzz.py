"""File-format fuzz: seeded mutations of a saved index of every kind, loaded in a child process.

Each mutant must either load into an index that passes a self-consistency check (_fuzz_child.py) or
raise ValueError: never another exception type, a crash, a hang or a huge allocation (the child runs
under RLIMIT_AS, so an allocation sized by a corrupt count fails visibly). Mutations come both with
stale checksums (the checks must catch them) and re-sealed (checksums recomputed, or the file rebuilt
around mutated sections, so the section parsers themselves see the damage).

The default run is sized for CI; ADANNS_FUZZ_SCALE=<factor> multiplies the mutants per seed file for a
soak run (e.g. ADANNS_FUZZ_SCALE=50). The seed comes from the ``rng`` fixture (replay:
ADANNS_TEST_SEED)."""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

import adanns
from _index_file import KINDS, assemble, checksum64, data_checksum, parse_header, reseal, split

HERE = os.path.dirname(os.path.abspath(__file__))
MUTANTS_PER_FILE = int(400 * float(os.environ.get("ADANNS_FUZZ_SCALE", "1")))
MEMORY_CAP = 2 << 30  # bytes of address space for the child
HANG_S = 30.0  # one file taking longer than this to load and check is a hang


# ----------------------------------------------------------------------------------------- seed files
def _x(rng, n, d):
    return rng.standard_normal((n, d)).astype(np.float32)


def _ids(rng, n):
    return rng.choice(10**6, size=n, replace=False).astype(np.int64) + 10**9


def _seed_indexes(rng):
    """One small saved index of every kind and variant a file can hold: removed ids, a tuned frontier
    (user metadata), trained and untrained, mmap-able or not."""
    d, q = 16, _x(rng, 12, 16)
    out = {}

    flat = adanns.FlatIndex(d, "ip")
    ids = _ids(rng, 40)
    flat.add(_x(rng, 40, d), ids=ids)
    flat.remove(ids[::6])
    flat.tune(q, k=5)
    out["flat-ip-tuned"] = flat
    flat = adanns.FlatIndex(8, "l2")
    flat.add(_x(rng, 25, 8))
    out["flat-l2"] = flat
    out["flat-cosine-empty"] = adanns.FlatIndex(8, "cosine")

    ivf = adanns.IVFIndex(d, 4, metric="l2", cluster_dim=8)
    ivf.train(_x(rng, 80, d))
    ids = _ids(rng, 60)
    ivf.add(_x(rng, 60, d), ids=ids)
    ivf.remove(ids[::5])
    ivf.tune(q, k=5)
    out["ivf-l2-tuned"] = ivf
    ivf = adanns.IVFIndex(8, 3, metric="cosine")
    ivf.train(_x(rng, 30, 8))
    ivf.add(_x(rng, 20, 8))
    out["ivf-cosine"] = ivf
    out["ivf-untrained"] = adanns.IVFIndex(8, 3)

    opq = adanns.OPQIndex(d, 4, 16, opq=True, nbits=8, seed=1)
    opq.train(_x(rng, 300, d), opq_niter=2, pq_niter=3)
    ids = _ids(rng, 40)
    opq.add(_x(rng, 40, d), ids=ids)
    opq.remove(ids[:3])
    opq.tune(q, k=5)
    out["opq-8bit-tuned"] = opq
    pq = adanns.OPQIndex(d, 4, 8, opq=False, nbits=4, store_vectors=False, metric="l2")
    pq.train(_x(rng, 40, d), pq_niter=3)
    pq.add(_x(rng, 30, d))
    out["pq-4bit-codes-only"] = pq
    out["opq-untrained"] = adanns.OPQIndex(8, 2, 8)

    ivfopq = adanns.IVFOPQIndex(d, 3, cluster_dim=8, m=4, pq_dim=8, nbits=4, residual=True, seed=2)
    ivfopq.train(_x(rng, 60, d), opq_niter=2)
    ids = _ids(rng, 45)
    ivfopq.add(_x(rng, 45, d), ids=ids)
    ivfopq.remove(ids[10:14])
    ivfopq.tune(q, k=5)
    out["ivfopq-4bit-residual-tuned"] = ivfopq
    ivfopq = adanns.IVFOPQIndex(d, 2, m=2, pq_dim=16, nbits=8, residual=False, opq=False)
    ivfopq.train(_x(rng, 260, d), pq_niter=2)
    ivfopq.add(_x(rng, 20, d))
    out["ivfpq-8bit"] = ivfopq

    codes = rng.integers(0, 256, (30, 3), dtype=np.uint8)
    ids = _ids(rng, 30)
    binary = adanns.BinaryIndex(24, codes=codes, vectors=_x(rng, 30, 8), ids=ids)
    binary.remove(ids[::7])
    binary.build_hash(2)
    out["binary-24bit-vectors-hash"] = binary
    out["binary-128bit"] = adanns.BinaryIndex(128, codes=rng.integers(0, 256, (20, 16), dtype=np.uint8))

    bz = adanns.BinarizedIndex(d, bits=16, rotation="itq", seed=3)
    bz.train(_x(rng, 50, d))
    bz.add(_x(rng, 30, d), ids=_ids(rng, 30))
    bz.tune(q, k=5)
    out["binarized-itq-tuned"] = bz
    bz = adanns.BinarizedIndex(12, bits=8, center=False)
    bz.train(_x(rng, 10, 12))
    bz.add(_x(rng, 10, 12))
    out["binarized-plain"] = bz

    graph = adanns.GraphIndex(d, graph_dim=8, M=4, ef_construction=16, metric="l2", seed=4)
    ids = _ids(rng, 40)
    graph.add(_x(rng, 40, d), ids=ids)
    graph.remove(ids[::5])  # tombstones kept in the file
    out["graph-float32-tombstones"] = graph
    graph = adanns.GraphIndex(d, M=6, ef_construction=20, metric="cosine", storage="sq8", seed=5)
    graph.add(_x(rng, 60, d))
    graph.tune(q, k=5)
    out["graph-sq8-tuned"] = graph
    out["graph-empty"] = adanns.GraphIndex(8, storage="sq8")
    return out


# ----------------------------------------------------------------------------------------- mutations
U64_VALUES = [0, 1, 2, 3, 4, 7, 8, 0x7F, 0xFF, 0x100, 0xFFFF, 1 << 24, (1 << 24) + 1, 0x7FFFFFFF, 1 << 31,
              0xFFFFFFFF, 1 << 32, 1 << 40, 1 << 60, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 8]
BYTE_VALUES = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE]
FLOAT_VALUES = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 3.4e38, 1e-45]


def _put_u64(b: bytearray, off: int, v: int) -> None:
    off = max(0, min(off, len(b) - 8))
    if len(b) >= 8:
        b[off:off + 8] = struct.pack("<Q", v & ((1 << 64) - 1))


def _u64_value(rng, old: int) -> int:
    if rng.random() < 0.3:  # near the original: off-by-one counts and sizes
        return int(max(0, old + int(rng.choice([-2, -1, 1, 2, old, -old // 2]))))
    return int(rng.choice(U64_VALUES))


def _bytes_op(b: bytes, rng, boundaries: list) -> tuple[str, bytes]:
    """One random byte-level damage to ``b`` (a file or a section); the name says which."""
    b = bytearray(b)
    n = len(b)
    pos = lambda: int(rng.integers(0, n)) if n else 0  # noqa: E731
    where = lambda: int(rng.choice(boundaries)) if boundaries and rng.random() < 0.5 else pos()  # noqa: E731
    op = rng.choice(["flip", "bytes", "u64", "truncate", "insert", "delete", "swap", "append", "float"])
    if n == 0 and op not in ("insert", "append"):
        op = "append"
    if op == "flip":
        for _ in range(int(rng.integers(1, 5))):
            b[pos()] ^= 1 << int(rng.integers(0, 8))
    elif op == "bytes":
        p = pos()
        for j in range(int(rng.integers(1, 9))):
            if p + j < n:
                b[p + j] = int(rng.choice(BYTE_VALUES))
    elif op == "u64":
        p = pos()
        p -= p % int(rng.choice([8, 4, 1]))
        old = struct.unpack_from("<Q", bytes(b[max(0, min(p, n - 8)):]).ljust(8, b"\0"))[0]
        _put_u64(b, p, _u64_value(rng, old))
    elif op == "truncate":
        b = b[:min(where(), n - 1)]
    elif op == "insert":
        p = where() if n else 0
        b[p:p] = bytes(rng.integers(0, 256, int(rng.choice([1, 3, 4, 8, 64])), dtype=np.uint8))
    elif op == "delete":
        p = where()
        del b[p:p + int(rng.choice([1, 3, 4, 8, 64]))]
    elif op == "swap":  # two equal-length chunks exchanged
        w = int(rng.integers(1, max(2, n // 4)))
        i, j = sorted(int(x) for x in rng.integers(0, max(1, n - w), 2))
        if j >= i + w:
            b[i:i + w], b[j:j + w] = b[j:j + w], b[i:i + w]
    elif op == "append":
        b += bytes(int(rng.choice(BYTE_VALUES)) for _ in range(int(rng.choice([1, 4, 8, 64]))))
    elif op == "float":
        p = pos() // 4 * 4
        if p + 4 <= n:
            b[p:p + 4] = struct.pack("<f", float(rng.choice(FLOAT_VALUES)))
    return str(op), bytes(b)


def _json_mutation(value, rng):
    """A structurally damaged copy of a JSON value: a key dropped, a value of the wrong type or range."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = list(value)[int(rng.integers(0, len(value)))]
        out = dict(value)
        r = rng.random()
        if r < 0.2:
            del out[key]
        elif r < 0.6:
            out[key] = _json_mutation(value[key], rng)
        else:
            out[key] = [None, "x", -1, 0, 1e308, [], {}, True, 2**70, [1, 2]][int(rng.integers(0, 10))]
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        out = list(value)
        i = int(rng.integers(0, len(out)))
        if rng.random() < 0.3:
            del out[i]
        else:
            out[i] = _json_mutation(out[i], rng)
        return out
    if isinstance(value, str) and value and rng.random() < 0.5:
        return value[: int(rng.integers(0, len(value)))]  # e.g. a cut base64 array
    return [None, "x", -1, 0, 0.5, float("nan"), 1e308, [], {}, True, 2**70][int(rng.integers(0, 11))]


def _user_meta_span(meta: bytes):
    """(start, end) of the JSON user metadata inside a metadata section (it follows its u64 length), or None."""
    start = meta.find(b'{"')
    while start >= 8:
        end = start + struct.unpack_from("<Q", meta, start - 8)[0]
        if end <= len(meta):
            try:
                json.loads(meta[start:end])
                return start, end
            except ValueError:
                pass
        start = meta.find(b'{"', start + 1)
    return None


def _with_user_meta(meta: bytes, span, text: bytes) -> bytes:
    start, end = span
    return meta[:start - 8] + struct.pack("<Q", len(text)) + text + meta[end:]


def mutants(raw: bytes, ids: np.ndarray, rng, n: int):
    """``n`` (family, operation, bytes) mutants of the well-formed file ``raw`` holding ``ids``."""
    kind, meta, data = split(raw)
    h = parse_header(raw)
    meta_end, data_off = h["meta_off"] + h["meta_size"], h["data_off"]
    file_bounds = [0, 8, 12, 16, 24, 40, 56, 64, 71, 72, meta_end, data_off, data_off + 4, len(raw) // 2, len(raw) - 1]
    meta_bounds = [8 * i for i in range(min(16, len(meta) // 8 + 1))] + [len(meta)]
    id_offsets = [meta.find(struct.pack("<q", int(i))) for i in ids[:50]]
    id_offsets = [o for o in id_offsets if o >= 0]
    span = _user_meta_span(meta)
    families = ["stale", "resealed", "meta", "meta-fields", "data", "sections", "header", "ids", "user-meta"]
    for _ in range(n):
        fam = str(rng.choice(families))
        if fam in ("stale", "resealed"):  # damage anywhere in the file
            op, out = _bytes_op(raw, rng, file_bounds)
            yield fam, op, out if fam == "stale" else reseal(out)
        elif fam == "meta":  # the metadata damaged, the container rebuilt around it
            op, m = _bytes_op(meta, rng, meta_bounds)
            yield fam, op, assemble(kind, m, data)
        elif fam == "meta-fields":  # the leading u64 parameters and counts, one or two at a time
            m = bytearray(meta)
            for _ in range(int(rng.choice([1, 1, 2]))):
                p = 8 * int(rng.integers(0, min(16, len(meta) // 8)))
                _put_u64(m, p, _u64_value(rng, struct.unpack_from("<Q", meta, p)[0]))
            yield fam, "u64", assemble(kind, bytes(m), data)
        elif fam == "data":
            op, d = _bytes_op(data, rng, [0, len(data) // 2, len(data) - 4, len(data)])
            yield fam, op, assemble(kind, meta, d)
        elif fam == "sections":  # whole sections swapped, emptied, mislabelled
            op = str(rng.choice(["swap", "no-meta", "no-data", "kind", "version", "double-data"]))
            if op == "swap":
                out = assemble(kind, data, meta)
            elif op == "no-meta":
                out = assemble(kind, b"", data)
            elif op == "no-data":
                out = assemble(kind, meta, b"")
            elif op == "kind":  # another kind's parser reads this kind's sections
                out = assemble(int(rng.choice([0, 5, 2**31] + [k for k in KINDS.values() if k != kind])), meta, data)
            elif op == "version":
                out = assemble(kind, meta, data, version=int(rng.choice([0, 2, 2**32 - 1])))
            else:
                out = assemble(kind, meta, data + data)
            yield fam, op, out
        elif fam == "header":  # header fields changed, checksums recomputed: the offset checks
            b = bytearray(raw)
            p = int(rng.choice([16, 24, 32, 40]))
            _put_u64(b, p, _u64_value(rng, struct.unpack_from("<Q", raw, p)[0]))
            if rng.random() < 0.3:
                b = b[:int(rng.integers(72, len(b)))] if rng.random() < 0.5 else b + bytes(int(rng.integers(1, 128)))
            yield fam, "offsets", reseal(bytes(b))
        elif fam == "ids" and id_offsets:  # an id duplicated, negative, huge, or a fresh valid one
            m = bytearray(meta)
            p = int(rng.choice(id_offsets))
            v = [int(ids[0]), int(ids[-1]), -1, -(2**63), 2**63 - 1, 0, 12345][int(rng.integers(0, 7))]
            m[p:p + 8] = struct.pack("<q", v)
            yield fam, "id", assemble(kind, bytes(m), data)
        elif fam == "user-meta" and span is not None:
            start, end = span
            doc = json.loads(meta[start:end])
            r = rng.random()
            if r < 0.7:
                text = json.dumps(_json_mutation(doc, rng)).encode()
            elif r < 0.85:
                text = meta[start:end][: int(rng.integers(0, end - start))]  # cut JSON
            else:
                text = rng.choice([b"[]", b"null", b"\xff\xfe", b'{"binarizer": null}', b"7", b'"s"'])
            yield fam, "json", assemble(kind, _with_user_meta(meta, span, text), data)
        else:
            op, out = _bytes_op(raw, rng, file_bounds)
            yield "resealed", op, reseal(out)


# ----------------------------------------------------------------------------------------- the child
def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_child(manifest_path: str, count: int, script: str = os.path.join(HERE, "_fuzz_child.py"),
              hang_s: float = HANG_S) -> dict:
    """{entry: (class, detail)} for every manifest entry; a crash or hang is blamed on the entry in
    progress and the child restarted after it."""
    outcomes, start = {}, 0
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while start < count:
        with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: a chatty child never blocks on it
            proc = subprocess.Popen([sys.executable, script, manifest_path, str(start)], stdout=subprocess.PIPE,
                                    stderr=err, env=env, preexec_fn=_limit_memory, text=True)
            lines = queue.Queue()  # a reader thread, so a silent child is timed out, not waited for
            threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put("")], daemon=True).start()
            current, wait = None, hang_s + 30  # + start-up
            while True:
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    proc.kill()
                    proc.wait()
                    outcomes[current if current is not None else start] = ("FAIL", f"hang: no answer in {hang_s} s")
                    break
                if not line:  # the child exited
                    rc = proc.wait()
                    err.seek(0)
                    tail = err.read()[-2000:]
                    if current is not None:
                        outcomes[current] = ("FAIL", f"crash: exit status {rc}: {tail}")
                    elif start not in outcomes and (rc != 0 or not outcomes or max(outcomes) < count - 1):
                        outcomes[start] = ("FAIL", f"child stopped early: exit status {rc}: {tail}")
                    break
                tag, idx, *rest = line.rstrip("\n").split(" ", 3)
                if tag == "B":
                    current, wait = int(idx), hang_s
                else:
                    outcomes[int(idx)] = (rest[0], rest[1] if len(rest) > 1 else "")
                    current = None
        start = max(outcomes) + 1 if outcomes else count
    return outcomes


def _message_class(msg: str) -> str:
    """A ValueError message without its numbers and path, for the tally of what caught the damage."""
    msg = re.sub(r"'[^']*'", "''", msg)
    return re.sub(r"-?\d+", "N", msg)[:90]


# ----------------------------------------------------------------------------------------- the test
def test_mutated_index_files_load_or_raise_value_error(tmp_path, rng):
    seed = int(rng.integers(2**32))
    mrng = np.random.default_rng(seed)
    manifest, labels = [], []
    for name, ix in _seed_indexes(mrng).items():
        path = tmp_path / f"{name}.adanns"
        ix.save(path)
        raw = path.read_bytes()
        ids = np.asarray(ix.ids())
        mappable = not isinstance(ix, (adanns.BinaryIndex, adanns.BinarizedIndex, adanns.OPQIndex, adanns.IVFOPQIndex))
        for j, (fam, op, out) in enumerate(mutants(raw, ids, mrng, MUTANTS_PER_FILE)):
            p = tmp_path / f"{name}.{j}.adanns"
            p.write_bytes(out)
            mmap, verify = (False, True)
            if mappable:
                mmap, verify = [(False, True), (True, True), (True, False)][j % 3]
            manifest.append({"path": str(p), "mmap": mmap, "verify": verify})
            labels.append((name, fam, op))
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    t0 = time.monotonic()
    outcomes = run_child(str(manifest_path), len(manifest))
    elapsed = time.monotonic() - t0

    by_class = collections.Counter(cls for cls, _ in outcomes.values())
    by_family = collections.defaultdict(collections.Counter)
    reasons = collections.Counter()
    for i, (cls, detail) in outcomes.items():
        by_family[labels[i][1]][cls] += 1
        if cls == "ValueError":
            reasons[_message_class(detail)] += 1
    print(f"\nformat fuzz: seed {seed}, {len(manifest)} mutants of {len(manifest) // MUTANTS_PER_FILE} seed files, "
          f"{elapsed:.1f} s; outcomes {dict(by_class)}")
    for fam, c in sorted(by_family.items()):
        print(f"  {fam:12s} {dict(c)}")
    print(f"  {len(reasons)} distinct ValueError messages; most common:")
    for msg, c in reasons.most_common(12):
        print(f"    {c:5d}  {msg}")
    failures = [(labels[i], detail) for i, (cls, detail) in sorted(outcomes.items()) if cls not in ("ok", "ValueError")]
    assert len(outcomes) == len(manifest)
    assert not failures, f"{len(failures)} mutants neither loaded cleanly nor raised ValueError (seed {seed}):\n" + \
        "\n".join(f"{lab}: {d[:400]}" for lab, d in failures[:8])


def test_harness_reports_crashes_hangs_and_huge_allocations(tmp_path):
    # The harness itself must be able to fail: a child that segfaults, hangs, allocates past the memory
    # cap or raises another type on given entries has each blamed on its entry, and the rest still run.
    fake = tmp_path / "fake_child.py"
    fake.write_text(
        "import ctypes, json, sys, time\n"
        "m, start = json.load(open(sys.argv[1])), int(sys.argv[2])\n"
        "for i in range(start, len(m)):\n"
        "    print(f'B {i}', flush=True)\n"
        "    what = m[i]['path']\n"
        "    try:\n"
        "        if what == 'segv': ctypes.string_at(0)\n"
        "        if what == 'hang': time.sleep(60)\n"
        "        if what == 'huge': bytearray(3 << 30)\n"
        "        if what == 'key': {}['x']\n"
        "    except MemoryError:\n"
        "        print(f'E {i} FAIL MemoryError', flush=True); continue\n"
        "    except KeyError:\n"
        "        print(f'E {i} FAIL KeyError', flush=True); continue\n"
        "    print(f'E {i} ValueError fine' if what == 'bad' else f'E {i} ok', flush=True)\n")
    entries = ["ok", "segv", "bad", "hang", "huge", "key", "ok"]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"path": e} for e in entries]))
    out = run_child(str(manifest), len(entries), script=str(fake), hang_s=3)
    assert [out[i][0] for i in range(len(entries))] == ["ok", "FAIL", "ValueError", "FAIL", "FAIL", "FAIL", "ok"], out
    assert "crash" in out[1][1] and "hang" in out[3][1] and "MemoryError" in out[4][1]


# ----------------------------------------------------------------------------------------- regressions
# One crafted file per bug the fuzz found: each loaded silently, or failed with another exception type.
def _resave(tmp_path, ix, edit_meta=None, edit_data=None, name="x.adanns"):
    """``ix`` saved, its sections edited, and the file rebuilt with valid checksums."""
    path = tmp_path / name
    ix.save(path)
    kind, meta, data = split(path.read_bytes())
    meta = edit_meta(meta) if edit_meta else meta
    data = edit_data(data) if edit_data else data
    path.write_bytes(assemble(kind, meta, data))
    return path


def _edit_user_meta(fn):
    def edit(meta):
        start, end = _user_meta_span(meta)
        return _with_user_meta(meta, (start, end), json.dumps(fn(json.loads(meta[start:end]))).encode())
    return edit


@pytest.fixture
def binarized(rng):
    bz = adanns.BinarizedIndex(16, bits=16, rotation="itq", seed=1)
    bz.train(_x(rng, 40, 16))
    bz.add(_x(rng, 20, 16))
    return bz


@pytest.mark.parametrize("damage", [
    lambda m: {**m, "binarizer": {k: v for k, v in m["binarizer"].items() if k != "rotation_matrix"}},  # KeyError
    lambda m: {**m, "binarizer": 7},  # TypeError
    lambda m: {**m, "binarizer": {**m["binarizer"], "mean": {"shape": [3], "f8": "A" * 32}}},  # loaded, search failed
    lambda m: {**m, "binarizer": {**m["binarizer"], "mean": {"shape": [16], "f8": "!!"}}},  # not base64
    lambda m: {**m, "binarizer": {**m["binarizer"], "rotation_matrix": None}},  # itq without its matrix
    lambda m: {**m, "binarizer": {**m["binarizer"], "bits": 8}},  # does not match the codes
], ids=["missing-key", "not-an-object", "mean-shape", "mean-not-base64", "no-rotation", "bits"])
def test_damaged_binarizer_raises_value_error(tmp_path, binarized, damage):
    path = _resave(tmp_path, binarized, edit_meta=_edit_user_meta(damage))
    with pytest.raises(ValueError, match="binarizer"):
        adanns.load(path)


@pytest.mark.parametrize("damage,match", [
    (lambda m: {**m, "frontier": [1, 2]}, "malformed"),  # was AttributeError in a later search
    (lambda m: {**m, "frontier": {k: v for k, v in m["frontier"].items() if k != "frontiers"}}, "malformed"),
    (lambda m: _set_point(m, "mflops", "x"), "malformed"),  # was KeyError / TypeError
    (lambda m: _set_point(m, "params", {"nprobe": 2**70}), "malformed"),  # was a TypeError from the native search
    (lambda m: _set_point(m, "params", {"searCh_dim": 8}), "does not take"),  # was TypeError in the search
    (lambda m: _set_point(m, "params", {"search_dim": 56}), "query length"),  # was ValueError in the search
    (lambda m: _set_point(m, "params", {"rerank_dim": 16, "rerank_k": 2}), "fewer than k"),
    (lambda m: {**m, "frontier": {**m["frontier"], "frontiers": {"5": {**m["frontier"]["frontiers"]["5"],
                                                                       "query_dim": 17}}}}, "queries"),
], ids=["list", "no-frontiers", "mflops", "huge-nprobe", "unknown-setting", "search-dim", "rerank-k", "query-dim"])
def test_damaged_frontier_raises_value_error_on_load(tmp_path, rng, damage, match):
    ivf = adanns.IVFIndex(16, 3, cluster_dim=8)
    ivf.train(_x(rng, 40, 16))
    ivf.add(_x(rng, 40, 16))
    ivf.tune(_x(rng, 8, 16), k=5)
    with pytest.raises(ValueError, match=match):
        adanns.load(_resave(tmp_path, ivf, edit_meta=_edit_user_meta(damage)))


def _set_point(meta, key, value):
    meta["frontier"]["frontiers"]["5"]["points"][0][key] = value
    return meta


def test_frontier_of_another_version_still_loads(tmp_path, rng):
    flat = adanns.FlatIndex(16)
    flat.add(_x(rng, 30, 16))
    flat.tune(_x(rng, 8, 16), k=5)
    path = _resave(tmp_path, flat, edit_meta=_edit_user_meta(lambda m: {**m, "frontier": {**m["frontier"], "version": 99}}))
    back = adanns.load(path)
    assert len(back) == 30
    with pytest.raises(ValueError, match="re-run tune"):
        back.frontiers()


def test_binary_code_with_padding_bits_set_raises_value_error(tmp_path, rng):
    # 24-bit codes live in 64-bit words; a set padding bit added to every distance (a stored code was
    # not found by its own lookup)
    b = adanns.BinaryIndex(24, codes=rng.integers(0, 256, (5, 3), dtype=np.uint8))

    def set_padding(data):
        d = bytearray(data)
        d[8 * 2 + 5] = 0x10  # code 2, byte 5 of its word
        return bytes(d)

    with pytest.raises(ValueError, match="bits set past"):
        adanns.load(_resave(tmp_path, b, edit_data=set_padding))


def test_binary_hash_substrings_wider_than_8_bytes_raise_value_error(tmp_path, rng):
    b = adanns.BinaryIndex(128, codes=rng.integers(0, 256, (5, 16), dtype=np.uint8))
    b.build_hash(2)

    def one_substring(meta):
        return meta[:-8] + struct.pack("<Q", 1)  # the last field: hash substrings (16 bytes in one)

    with pytest.raises(ValueError, match="hash substrings"):
        adanns.load(_resave(tmp_path, b, edit_meta=one_substring))


def test_nonzero_container_padding_raises_value_error(tmp_path, rng):
    # no checksum covers the bytes between the metadata and the 64-byte aligned data
    flat = adanns.FlatIndex(8)
    flat.add(_x(rng, 5, 8))
    path = tmp_path / "f.adanns"
    flat.save(path)
    raw = bytearray(path.read_bytes())
    h = parse_header(bytes(raw))
    pad = h["meta_off"] + h["meta_size"]
    assert pad < h["data_off"], "this test needs a file with padding"
    raw[pad] = 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="padding"):
        adanns.load(path)


@pytest.mark.parametrize("kind", ["flat", "ivf", "pq", "binary"])
def test_default_ids_past_the_largest_id_are_refused_not_wrapped(tmp_path, rng, kind):
    # a file (or a caller) holding id 2^63 - 1: the next default id used to overflow to a negative id
    top = 2**63 - 1
    if kind == "binary":
        ix = adanns.BinaryIndex(8, codes=np.zeros((2, 1), np.uint8), ids=[5, top])
        more = dict(codes=np.zeros((1, 1), np.uint8))
    else:
        ix = {"flat": lambda: adanns.FlatIndex(8), "ivf": lambda: adanns.IVFIndex(8, 2),
              "pq": lambda: adanns.OPQIndex(8, 2, 8, nbits=4)}[kind]()
        if kind != "flat":
            ix.train(_x(rng, 40, 8))
        ix.add(_x(rng, 2, 8), ids=[5, top])
        more = dict(x=_x(rng, 1, 8))
    path = tmp_path / "top.adanns"
    ix.save(path)
    for index in (ix, adanns.load(path)):
        with pytest.raises(ValueError, match="2\\^63 - 1"):
            index.add(**more)
        index.add(**more, ids=[6])
        assert sorted(index.ids().tolist()) == [5, 6, top]
