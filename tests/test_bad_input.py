"""Rejected calls raise the documented exception and leave the index unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest

import adanns
from _reference import assert_same_snapshot, gaussian, snapshot

D = 12


def _flat(rng, metric="ip"):
    index = adanns.FlatIndex(D, metric=metric)
    index.add(gaussian(rng, 40, D))
    return index


def _ivf(rng, metric="ip"):
    index = adanns.IVFIndex(D, 4, metric=metric)
    index.train(gaussian(rng, 100, D))
    index.add(gaussian(rng, 40, D))
    return index


BUILDERS = {"flat": _flat, "ivf": _ivf}


@pytest.fixture(params=list(BUILDERS))
def index(request, rng):
    return BUILDERS[request.param](rng)


@pytest.fixture
def probe(rng):
    return gaussian(rng, 5, D)


def _search_kw(index):
    return {"nprobe": index.nlist} if isinstance(index, adanns.IVFIndex) else {}


def _rejects(index, probe, exc, fn, match=None):
    """fn(index) must raise exc (optionally matching) and change nothing observable."""
    before = snapshot(index, probe, **_search_kw(index))
    with pytest.raises(exc, match=match):
        fn(index)
    assert_same_snapshot(before, snapshot(index, probe, **_search_kw(index)))


ROW3 = r"\brow 3\b"


# --------------------------------------------------------------------------- constructor


@pytest.mark.parametrize("metric", ["", "L2", "dot", "euclidean", "cos"])
def test_bad_metric_raises_value_error(metric):
    with pytest.raises(ValueError):
        adanns.FlatIndex(8, metric=metric)
    with pytest.raises(ValueError):
        adanns.IVFIndex(8, 2, metric=metric)


# --------------------------------------------------------------------------- add


@pytest.mark.parametrize("width", [D - 1, D + 1, 1])
def test_add_wrong_width_raises_value_error(index, probe, rng, width):
    _rejects(index, probe, ValueError, lambda ix: ix.add(gaussian(rng, 3, width)))


def test_add_three_dimensional_array_raises_value_error(index, probe, rng):
    _rejects(index, probe, ValueError, lambda ix: ix.add(gaussian(rng, 6, D).reshape(2, 3, D)))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_add_integer_dtype_raises_type_error(index, probe, dtype):
    _rejects(index, probe, TypeError, lambda ix: ix.add(np.ones((3, D), dtype=dtype)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_add_non_finite_raises_value_error_naming_first_bad_row(index, probe, rng, bad):
    x = gaussian(rng, 10, D)
    x[3, D - 1] = bad  # last column: stored even if never searched
    x[7, 0] = bad
    _rejects(index, probe, ValueError, lambda ix: ix.add(x), match=ROW3)


def test_add_duplicate_ids_within_batch_raises_value_error(index, probe, rng):
    ids = np.array([100, 101, 102, 101], dtype=np.int64)
    _rejects(index, probe, ValueError, lambda ix: ix.add(gaussian(rng, 4, D), ids=ids))


def test_add_id_already_present_raises_value_error(index, probe, rng):
    ids = np.array([500, 501, 5], dtype=np.int64)  # 5 was given by default ids 0..39
    _rejects(index, probe, ValueError, lambda ix: ix.add(gaussian(rng, 3, D), ids=ids))


@pytest.mark.parametrize("m", [2, 4])
def test_add_ids_of_wrong_length_raises_value_error(index, probe, rng, m):
    ids = np.arange(1000, 1000 + m, dtype=np.int64)
    _rejects(index, probe, ValueError, lambda ix: ix.add(gaussian(rng, 3, D), ids=ids))


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_add_other_float_dtypes_are_converted(dtype, rng):
    x = gaussian(rng, 30, D).astype(dtype)
    q = gaussian(rng, 4, D)
    for build in ("flat", "ivf"):
        a = adanns.FlatIndex(D) if build == "flat" else adanns.IVFIndex(D, 3)
        b = adanns.FlatIndex(D) if build == "flat" else adanns.IVFIndex(D, 3)
        if build == "ivf":
            a.train(x)
            b.train(x.astype(np.float32))
            np.testing.assert_array_equal(a.centroids, b.centroids)
        a.add(x)
        b.add(x.astype(np.float32))
        kw = _search_kw(a)
        ra, rb = a.search(q.astype(dtype), k=5, **kw), b.search(q.astype(dtype).astype(np.float32), k=5, **kw)
        np.testing.assert_array_equal(ra.ids, rb.ids)
        np.testing.assert_array_equal(ra.scores, rb.scores)


def test_add_non_contiguous_array_is_accepted(rng):
    big = gaussian(rng, 60, 2 * D)
    x = big[::2, ::2]
    assert not x.flags.c_contiguous
    a, b = adanns.FlatIndex(D, metric="l2"), adanns.FlatIndex(D, metric="l2")
    a.add(x)
    b.add(np.ascontiguousarray(x))
    q = gaussian(rng, 3, D)
    np.testing.assert_array_equal(a.search(q, k=5).ids, b.search(q, k=5).ids)
    np.testing.assert_array_equal(a.search(q, k=5).scores, b.search(q, k=5).scores)


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("k", [0, -1])
def test_search_nonpositive_k_raises_value_error(index, probe, k):
    _rejects(index, probe, ValueError, lambda ix: ix.search(probe, k=k, **_search_kw(ix)))


@pytest.mark.skipif(open("/proc/sys/vm/overcommit_memory").read().strip() == "1",
                    reason="with overcommit always on, a 60 TB result may be granted and then kill the run")
def test_search_whose_results_cannot_fit_raises_a_precise_memory_error(index, probe):
    # 5 x 10^12 results are 60 TB: refused by numpy or by the core's allocator, either way a MemoryError that
    # says what did not fit (pybind11 alone would say only "std::bad_alloc")
    _rejects(index, probe, MemoryError, lambda ix: ix.search(probe, k=10**12, **_search_kw(ix)),
             match=r"queries x k|Unable to allocate .* shape \(5, 1000000000000\)")


def test_search_query_wider_than_dim_raises_value_error(index, probe, rng):
    _rejects(index, probe, ValueError, lambda ix: ix.search(gaussian(rng, 2, D + 1), k=3, **_search_kw(ix)))


def test_search_three_dimensional_query_raises_value_error(index, probe, rng):
    _rejects(index, probe, ValueError, lambda ix: ix.search(gaussian(rng, 4, D).reshape(2, 2, D), k=3))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_search_integer_query_raises_type_error(index, probe, dtype):
    _rejects(index, probe, TypeError, lambda ix: ix.search(np.ones((2, D), dtype=dtype), k=3))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_search_non_finite_query_raises_value_error_naming_first_bad_row(index, probe, rng, bad):
    q = gaussian(rng, 10, D)
    q[3, 0] = bad
    q[8, 1] = bad
    _rejects(index, probe, ValueError, lambda ix: ix.search(q, k=3, **_search_kw(ix)), match=ROW3)


def test_search_dim_larger_than_dim_raises_value_error(index, probe):
    _rejects(index, probe, ValueError, lambda ix: ix.search(probe, k=3, search_dim=D + 1, **_search_kw(ix)))


def test_search_dim_larger_than_query_raises_value_error(index, probe):
    short = np.ascontiguousarray(probe[:, :6])
    _rejects(index, probe, ValueError, lambda ix: ix.search(short, k=3, search_dim=7, **_search_kw(ix)))


def test_search_dim_zero_raises_value_error(index, probe):
    _rejects(index, probe, ValueError, lambda ix: ix.search(probe, k=3, search_dim=0, **_search_kw(ix)))


def test_rerank_k_smaller_than_k_raises_value_error(index, probe):
    _rejects(
        index, probe, ValueError,
        lambda ix: ix.search(probe, k=5, search_dim=4, rerank_dim=D, rerank_k=4, **_search_kw(ix)),
    )


def test_rerank_dim_larger_than_dim_raises_value_error(index, probe):
    _rejects(
        index, probe, ValueError,
        lambda ix: ix.search(probe, k=5, search_dim=4, rerank_dim=D + 1, rerank_k=10, **_search_kw(ix)),
    )


@pytest.mark.parametrize("threads", [0, -1])
def test_search_nonpositive_threads_raises_value_error(index, probe, threads):
    _rejects(index, probe, ValueError, lambda ix: ix.search(probe, k=3, threads=threads, **_search_kw(ix)))


@pytest.mark.parametrize("nprobe", [0, -1])
def test_search_nprobe_below_one_raises_value_error(rng, probe, nprobe):
    index = _ivf(rng)
    _rejects(index, probe, ValueError, lambda ix: ix.search(probe, k=3, nprobe=nprobe))


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_search_other_float_dtypes_are_converted(index, probe, dtype):
    q = probe.astype(dtype)
    a = index.search(q, k=5, **_search_kw(index))
    b = index.search(q.astype(np.float32), k=5, **_search_kw(index))
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


# --------------------------------------------------------------------------- remove


def test_remove_unknown_id_raises_key_error(index, probe):
    _rejects(index, probe, KeyError, lambda ix: ix.remove(np.array([3, 12345], dtype=np.int64)))


# --------------------------------------------------------------------------- untrained IVF


def test_add_before_train_raises_runtime_error(rng):
    index = adanns.IVFIndex(D, 4)
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(gaussian(rng, 5, D))
    assert len(index) == 0
    assert index.is_trained is False


def test_search_before_train_raises_runtime_error(rng):
    index = adanns.IVFIndex(D, 4)
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(gaussian(rng, 2, D), k=3)
    assert index.is_trained is False


# --------------------------------------------------------------------------- train


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_train_non_finite_raises_value_error_naming_first_bad_row(rng, bad):
    index = adanns.IVFIndex(D, 4)
    x = gaussian(rng, 50, D)
    x[3, D - 1] = bad
    x[9, 2] = bad
    with pytest.raises(ValueError, match=ROW3):
        index.train(x)
    assert index.is_trained is False


def test_train_integer_dtype_raises_type_error():
    index = adanns.IVFIndex(D, 4)
    with pytest.raises(TypeError):
        index.train(np.ones((50, D), dtype=np.int32))
    assert index.is_trained is False


@pytest.mark.parametrize("width", [D - 1, D + 1])
def test_train_wrong_width_raises_value_error(rng, width):
    index = adanns.IVFIndex(D, 4)
    with pytest.raises(ValueError):
        index.train(gaussian(rng, 50, width))
    assert index.is_trained is False


def test_train_fewer_rows_than_nlist_raises_value_error(rng):
    index = adanns.IVFIndex(D, 8)
    with pytest.raises(ValueError):
        index.train(gaussian(rng, 7, D))
    assert index.is_trained is False


@pytest.mark.parametrize("threads", [0, -1])
def test_train_nonpositive_threads_raises_value_error(rng, threads):
    index = adanns.IVFIndex(D, 4)
    with pytest.raises(ValueError):
        index.train(gaussian(rng, 50, D), threads=threads)
    assert index.is_trained is False


def test_rejected_retrain_keeps_trained_state(rng, probe):
    index = adanns.IVFIndex(D, 4)
    index.train(gaussian(rng, 100, D))
    centroids = np.asarray(index.centroids).copy()
    x = gaussian(rng, 50, D)
    x[3, 0] = np.nan
    _rejects(index, probe, ValueError, lambda ix: ix.train(x), match=ROW3)
    np.testing.assert_array_equal(index.centroids, centroids)
    assert index.is_trained is True


def test_error_messages_name_the_row_not_a_later_one(rng):
    # row 30 must not be reported as "row 3" (word boundary) and vice versa
    index = adanns.FlatIndex(D)
    x = gaussian(rng, 40, D)
    x[30, 5] = np.nan
    with pytest.raises(ValueError) as err:
        index.add(x)
    assert re.search(r"\brow 30\b", str(err.value)), str(err.value)
    assert len(index) == 0
