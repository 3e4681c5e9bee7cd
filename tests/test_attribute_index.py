"""The native attribute indexes behind filters (attribute_index.h): kept exact through interleaved
adds, removes, upserts and rebuilds, exact at the edges of numeric ranges, and safe on any program.
The reference evaluates each expression row by row over index.attributes() (test_filtered.py)."""

import numpy as np
import pytest

import adanns
from adanns import _core

from test_filtered import reference_ids


def fresh_rng():
    return np.random.default_rng(np.random.SeedSequence().entropy % 2**32)


def batch_attributes(rng, n):
    """Skewed and uniform fields, some values missing; few distinct levels make heavy runs."""
    def maybe(values, p=0.1):
        return [None if rng.random() < p else v for v in values]
    return {
        "lang": maybe([f"l{min(int(z), 30)}" for z in rng.zipf(1.4, n)]),
        "tags": [list(rng.choice(["a", "b", "c", "d", "e"], rng.integers(0, 4), replace=False)) for _ in range(n)],
        "year": maybe(rng.integers(1900, 2030, n).tolist()),
        "level": maybe([int(v) for v in rng.choice([0, 1, 2], n, p=[0.8, 0.15, 0.05])]),
        "price": maybe((rng.random(n) * 100).round(1).tolist()),
        "stock": maybe((rng.random(n) < 0.3).tolist()),
    }


def random_condition(rng, ids):
    kind = rng.integers(0, 8)
    if kind == 0:
        return {"key": "lang", "match": {"any": [f"l{int(v)}" for v in rng.integers(1, 32, rng.integers(1, 4))]}}
    if kind == 1:
        return {"key": "tags", "match": {"value": str(rng.choice(["a", "b", "c", "e", "zz"]))}}
    if kind == 2:
        lo = int(rng.integers(1890, 2040))
        return {"key": "year", "range": {str(rng.choice(["gt", "gte"])): lo,
                                         str(rng.choice(["lt", "lte"])): lo + int(rng.integers(0, 140))}}
    if kind == 3:
        return {"key": "level", "range": {str(rng.choice(["gt", "gte", "lt", "lte"])): int(rng.integers(-1, 4))}}
    if kind == 4:
        return {"key": "level", "match": {"value": int(rng.integers(0, 3))}}
    if kind == 5:  # bounds on the 0.1 grid the prices sit on: strict and inclusive edges both matter
        a, b = sorted(rng.integers(0, 1000, 2) / 10)
        return {"key": "price", "range": {str(rng.choice(["gt", "gte"])): float(a),
                                          str(rng.choice(["lt", "lte"])): float(b)}}
    if kind == 6:
        return {"key": "stock", "match": {"value": bool(rng.random() < 0.5)}}
    return {"has_id": [int(i) for i in rng.choice(ids, int(rng.integers(1, 40)))]} if len(ids) else {}


def random_expression(rng, ids, depth=0):
    if depth >= 2 or rng.random() < 0.35:
        return random_condition(rng, ids)
    expr = {}
    for group in ("must", "should", "must_not"):
        if rng.random() < 0.5:
            expr[group] = [random_expression(rng, ids, depth + 1) for _ in range(int(rng.integers(1, 3)))]
    return expr or random_condition(rng, ids)


def declare_fields(index):
    for field, kind in (("lang", "keyword"), ("tags", "keyword"), ("year", "int"), ("level", "int"),
                        ("price", "float"), ("stock", "bool")):
        index.declare(field, kind)


def check_filters(index, rng, count):
    ids = index.ids()
    for _ in range(count):
        expr = random_expression(rng, ids)
        want = np.sort(reference_ids(index, expr, ids))
        np.testing.assert_array_equal(index.compile_filter(expr), want, err_msg=str(expr))


def test_interleaved_writes_keep_filters_exact():
    """Small and large batches under scattered ids, removals (past half: the rebuild), upserts that
    change values: postings turn from lists into bitsets, sorted tails merge, cuts are rebuilt."""
    rng = fresh_rng()
    index = adanns.FlatIndex(4, "l2")
    declare_fields(index)
    next_ids = rng.permutation(10 ** 6)[:40000].astype(np.int64)  # scattered, never in order
    used = 0
    for step in range(24):
        size = int(rng.choice([1, 7, 300, 3000]))
        new = next_ids[used:used + size]
        used += size
        index.add(rng.standard_normal((size, 4)).astype(np.float32), new, attributes=batch_attributes(rng, size))
        held = index.ids()
        if step % 4 == 3:
            index.remove(rng.choice(held, len(held) // 2 + 1, replace=False))  # past half: rebuilt
        elif step % 4 == 1 and len(held) > 10:
            ids = rng.choice(held, 10, replace=False)
            index.upsert(rng.standard_normal((10, 4)).astype(np.float32), ids, attributes=batch_attributes(rng, 10))
        if step % 3 == 2:
            check_filters(index, rng, 8)
    check_filters(index, rng, 20)


def test_search_with_a_filter_after_writes_equals_brute_force():
    rng = fresh_rng()
    d, k = 8, 10
    index = adanns.FlatIndex(d, "l2")
    declare_fields(index)
    x = rng.standard_normal((6000, d)).astype(np.float32)
    index.add(x[:4000], attributes=batch_attributes(rng, 4000))
    index.remove(np.arange(0, 4000, 3))
    index.add(x[4000:], np.arange(4000, 6000), attributes=batch_attributes(rng, 2000))
    q = rng.standard_normal((4, d)).astype(np.float32)
    held = index.ids()
    for _ in range(6):
        expr = random_expression(rng, held)
        allowed = np.sort(reference_ids(index, expr, held))
        got = index.search(q, k, filter=expr).ids
        m = min(k, len(allowed))
        assert (got[:, m:] == -1).all()
        if m:
            dist = ((q[:, None, :].astype(np.float64) - x[allowed][None].astype(np.float64)) ** 2).sum(-1)
            want = allowed[np.argsort(dist, axis=1, kind="stable")[:, :m]]
            np.testing.assert_array_equal(got[:, :m], want, err_msg=str(expr))


def test_numeric_ranges_exact_at_their_edges():
    big, small = 2 ** 63 - 1, -(2 ** 63)
    ints = [small, small + 1, -5, -1, 0, 0, 1, 2, 2, 3, big - 1, big]
    floats = [-1e300, -2.5, -0.0, 0.0, 1e-300, 0.1, 0.1, 0.30000000000000004, 2.5, 1e300, 5.0, 7.25]
    index = adanns.FlatIndex(2, "l2")
    index.add(np.zeros((len(ints), 2), np.float32), attributes={"i": ints, "f": floats})
    bounds = [small, small + 1, -5, -4.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, big - 1, big, 1e30, -1e30, 2.0 ** 63]
    for field, values in (("i", ints), ("f", floats)):
        fb = bounds if field == "i" else [-1e300, -2.5, -0.0, 1e-300, 0.1, 0.2, 0.30000000000000004, 2.5, 1e300, 1e308]
        for op in ("gt", "gte", "lt", "lte"):
            for b in fb:
                if field == "f":
                    b = float(b)
                want = [i for i, v in enumerate(values)
                        if {"gt": v > b, "gte": v >= b, "lt": v < b, "lte": v <= b}[op]]
                got = index.compile_filter({"key": field, "range": {op: b}}).tolist()
                assert got == want, (field, op, b)
    assert index.compile_filter({"key": "i", "match": {"any": [big, small, 2, 2 ** 70]}}).tolist() == [0, 7, 8, 11]
    assert index.compile_filter({"key": "i", "range": {"gt": 3, "lt": 2}}).tolist() == []


def test_malformed_programs_raise_and_never_crash():
    """Programs come from the encoder, but the native call must survive any: truncated, wrong
    opcodes, counts past the end, undeclared fields, deep nesting."""
    rng = fresh_rng()
    ix = _core.AttributeIndex()
    ix.declare(0, 0)
    ix.declare(1, 1)
    ix.declare(2, 2)
    first = ix.append_rows(np.arange(100, dtype=np.int64))
    ix.set_keywords(0, first, np.arange(101, dtype=np.int64), (np.arange(100) % 7).astype(np.int32))
    ix.set_ints(1, first, np.arange(100, dtype=np.int64), np.ones(100, np.uint8))
    ix.set_floats(2, first, np.linspace(0, 1, 100), np.ones(100, np.uint8))
    assert ix.compile(np.array([4, 0, 1, 3], np.int64)).tolist() == list(range(3, 100, 7))
    for bad in ([], [8], [-1], [1, 5, 0], [4, 0, 3, 1], [5, 0, 1], [5, 3, 1, 2], [5, 2, 0, 1], [7, 2 ** 40],
                [3], [0, 0], [1, -1], [1] + [1, 1] * 300 + [0]):
        with pytest.raises(ValueError):
            ix.compile(np.array(bad, np.int64))
    for _ in range(3000):
        prog = rng.integers(-2, 10, int(rng.integers(0, 12))).astype(np.int64)
        try:
            out = ix.compile(prog, bool(rng.random() < 0.5))
        except ValueError:
            continue
        assert out.dtype in (np.int64, np.uint8)
