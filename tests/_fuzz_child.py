"""Child process of the file-format fuzz (test_format_fuzz.py): loads mutated index files and checks
what loads. Run as ``python _fuzz_child.py MANIFEST START``; MANIFEST is a JSON list of
{"path", "mmap", "verify"}. For each entry from START it prints ``B i`` before the attempt and
``E i CLASS DETAIL`` after it, flushed, so the parent can blame a crash or a hang on one file.

CLASS is ``ok`` (loaded, and the index passed the self-consistency check), ``ValueError`` (refused),
or ``FAIL`` (any other exception, or a loaded index that is inconsistent)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
import warnings

import numpy as np

import adanns


def _check_result(ids, scores, nq, k, stored, what):
    ids, scores = np.asarray(ids), np.asarray(scores)
    assert ids.shape == (nq, k) and ids.dtype == np.int64, f"{what}: ids {ids.dtype} {ids.shape}"
    assert scores.shape == (nq, k), f"{what}: scores shape {scores.shape}"
    found = ids[ids != -1]
    assert np.isin(found, stored).all(), f"{what}: returned ids that are not stored: {found[~np.isin(found, stored)]}"
    for row in ids:
        real = row[row != -1]
        assert len(np.unique(real)) == len(real), f"{what}: an id returned twice in one row"


def _vectors(rng, n, dim):
    return rng.standard_normal((n, dim)).astype(np.float32)


def check(ix, rng, scratch):
    """Self-consistency of a loaded index: sizes, searches of every kind it offers, a tuned search
    when it holds a frontier, save + load round trip, then a remove and an add."""
    ids = np.asarray(ix.ids())
    n = len(ix)
    assert ids.shape == (n,) and ids.dtype == np.int64, f"ids() {ids.dtype} {ids.shape} for len {n}"
    assert len(np.unique(ids)) == n, "duplicate ids"
    assert (ids >= 0).all(), "negative id"
    nq, k = 3, 5
    if isinstance(ix, adanns.BinaryIndex):
        codes = rng.integers(0, 256, (nq, ix.code_bytes), dtype=np.uint8)
        d, i = ix.search(codes, k=k, threads=1)
        _check_result(i, d, nq, k, ids, "hamming search")
        for method in ("hash", "scan", "auto"):
            r = ix.range_search(codes, 2, method=method, threads=1)
            assert len(r.lims) == nq + 1 and r.lims[-1] == len(r.ids), "range_search lims"
            assert np.isin(r.ids, ids).all(), "range_search returned ids that are not stored"
        if ix.dim:
            s, i = ix.search_rerank(codes, _vectors(rng, nq, min(ix.dim, 64)), k=k, shortlist=10, threads=1)
            _check_result(i, s, nq, k, ids, "search_rerank")
        stored_codes = ix.codes()
        assert stored_codes.shape == (n, ix.code_bytes), "codes() shape"
        if n:
            hits = ix.lookup(stored_codes[0])
            assert ids[0] in hits, "lookup of a stored code misses it"
    else:
        q = _vectors(rng, nq, min(ix.dim, 64))
        trained = ix.is_trained
        if isinstance(ix, adanns.GraphIndex) and n == 0:  # documented: a graph refuses to search before any vector
            try:
                ix.search(q, k=k, threads=1)
                raise AssertionError("an empty graph answered a search")
            except RuntimeError as e:
                assert "empty" in str(e), f"empty graph search: {e}"
        elif trained:
            kw = {}
            if isinstance(ix, (adanns.IVFIndex, adanns.IVFOPQIndex)):
                kw["nprobe"] = min(ix.nlist, 3)
            res = ix.search(q, k=k, threads=1, **kw)
            _check_result(res.ids, res.scores, nq, k, ids, "search")
            try:
                frontiers = ix.frontiers()
            except adanns.tuning.FrontierVersionError:  # another format or version: documented, not damage
                frontiers = {}
            for kk, f in frontiers.items():
                if f.points and kk <= 1000:  # an empty frontier (tune with grid=[]) raises RuntimeError
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        qq = _vectors(rng, nq, f.query_dim)
                        res = ix.search(qq, k=kk, threads=1, target_recall=0.9)
                        _check_result(res.ids, res.scores, nq, kk, ids, "tuned search")
                        res = ix.search(qq, k=kk, threads=1, budget_mflops=1.0)
                        _check_result(res.ids, res.scores, nq, kk, ids, "budget search")
    path = os.path.join(scratch, "roundtrip.adanns")
    ix.save(path)
    back = adanns.load(path)
    assert type(back) is type(ix) and len(back) == n, "save + load changed the index"
    assert np.array_equal(np.sort(np.asarray(back.ids())), np.sort(ids)), "save + load changed the ids"
    os.remove(path)
    if n:
        assert ix.remove(ids[:1]) == 1, "remove of a stored id"
    # Default ids follow the largest id held; when that is 2^63 - 1 they are refused, so pass one.
    new_ids = [int(ids.min()) - 1] if n and ids.max() == 2**63 - 1 and ids.min() > 0 else None
    if new_ids is None and n and ids.max() == 2**63 - 1:
        new_ids = [int(np.setdiff1d(np.arange(n + 1), ids)[0])]
    if isinstance(ix, adanns.BinaryIndex):
        ix.add(rng.integers(0, 256, (1, ix.code_bytes), dtype=np.uint8),
               vectors=_vectors(rng, 1, ix.dim) if ix.dim else None, ids=new_ids)
    elif ix.is_trained:
        ix.add(_vectors(rng, 1, ix.dim), ids=new_ids)
    after = np.asarray(ix.ids())
    assert len(np.unique(after)) == len(after) == len(ix), "ids inconsistent after remove + add"


def main():
    manifest, start = json.load(open(sys.argv[1])), int(sys.argv[2])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(start, len(manifest)):
            m = manifest[i]
            print(f"B {i}", flush=True)
            try:
                ix = adanns.load(m["path"], mmap=m["mmap"], verify=m["verify"])
            except ValueError as e:
                print(f"E {i} ValueError {str(e).splitlines()[0] if str(e) else ''}", flush=True)
                continue
            except BaseException as e:  # noqa: BLE001 - any other type is the finding
                print(f"E {i} FAIL load raised {type(e).__name__}: {e!r}"[:2000].replace("\n", " "), flush=True)
                continue
            try:
                check(ix, rng, scratch)
            except BaseException as e:  # noqa: BLE001
                tb = traceback.format_exc().replace("\n", " | ")
                print(f"E {i} FAIL loaded but check raised {type(e).__name__}: {e} :: {tb}"[:1500], flush=True)
                continue
            print(f"E {i} ok", flush=True)


if __name__ == "__main__":
    main()
