"""save / load: roundtrip, mmap, corruption detection, mutation after load."""

from __future__ import annotations

import os

import numpy as np
import pytest

import adanns
from _reference import METRICS, gaussian


def _build(kind, metric, rng, n=500, d=24):
    x = gaussian(rng, n, d)
    if kind == "flat":
        index = adanns.FlatIndex(d, metric=metric)
    else:
        index = adanns.IVFIndex(d, 8, metric=metric, cluster_dim=12)
        index.train(x)
    ids = rng.choice(10**6, size=n, replace=False).astype(np.int64) + 10**12
    index.add(x, ids=ids)
    index.remove(ids[::7])
    return index, x


def _search_all(index, q):
    """A few representative searches; returns a list of (scores, ids, mflops)."""
    kw = [dict(k=10), dict(k=5, search_dim=6), dict(k=5, search_dim=6, rerank_dim=24, rerank_k=40), dict(k=1000)]
    out = []
    for extra in kw:
        if isinstance(index, adanns.IVFIndex):
            extra = dict(extra, nprobe=3)
        res = index.search(q, **extra)
        out.append((np.asarray(res.scores), np.asarray(res.ids), np.asarray(res.mflops)))
    return out


def _assert_same_results(a, b):
    for (sa, ia, ma), (sb, ib, mb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(sa, sb)
        np.testing.assert_array_equal(ma, mb)


def _assert_same_index(a, b):
    assert type(a) is type(b)
    assert len(a) == len(b)
    assert a.dim == b.dim
    assert a.metric == b.metric
    assert a.is_trained == b.is_trained
    if isinstance(a, adanns.IVFIndex):
        assert a.nlist == b.nlist
        assert a.cluster_dim == b.cluster_dim
        np.testing.assert_array_equal(a.centroids, b.centroids)
        np.testing.assert_array_equal(a.list_sizes(), b.list_sizes())


@pytest.fixture
def saved(tmp_path, rng, request):
    kind, metric = request.param
    index, x = _build(kind, metric, rng)
    path = str(tmp_path / f"{kind}-{metric}.adanns")
    index.save(path)
    return index, x, path


KINDS = [(k, m) for k in ("flat", "ivf") for m in METRICS]


@pytest.mark.parametrize("saved", KINDS, indirect=True, ids=[f"{k}-{m}" for k, m in KINDS])
@pytest.mark.parametrize("mmap", [False, True])
def test_roundtrip_preserves_index_and_results(saved, mmap, rng):
    index, x, path = saved
    q = gaussian(rng, 9, 24)
    loaded = adanns.load(path, mmap=mmap)
    _assert_same_index(index, loaded)
    _assert_same_results(_search_all(index, q), _search_all(loaded, q))


@pytest.mark.parametrize("saved", KINDS, indirect=True, ids=[f"{k}-{m}" for k, m in KINDS])
def test_mmap_and_copy_loads_give_identical_results(saved, rng):
    _, _, path = saved
    q = gaussian(rng, 9, 24)
    _assert_same_results(_search_all(adanns.load(path, mmap=False), q), _search_all(adanns.load(path, mmap=True), q))


@pytest.mark.parametrize("saved", KINDS, indirect=True, ids=[f"{k}-{m}" for k, m in KINDS])
@pytest.mark.parametrize("mmap", [False, True])
def test_loaded_index_can_add_and_remove(saved, mmap, rng):
    index, x, path = saved
    loaded = adanns.load(path, mmap=mmap)
    y = gaussian(rng, 20, 24)
    for ix in (index, loaded):
        ix.add(y)  # default ids continue after the largest id, also after a load
        live = np.asarray(ix.search(x[:3], k=3, **({"nprobe": 8} if isinstance(ix, adanns.IVFIndex) else {})).ids)
        victims = np.unique(live[:, 0])  # two queries may share a nearest row
        assert ix.remove(victims) == len(victims)
    q = np.concatenate([y[:5], gaussian(rng, 5, 24)])
    _assert_same_index(index, loaded)
    _assert_same_results(_search_all(index, q), _search_all(loaded, q))


@pytest.mark.parametrize("saved", KINDS[:1] + KINDS[3:4], indirect=True, ids=["flat-ip", "ivf-ip"])
def test_mutating_an_mmapped_index_leaves_the_file_untouched(saved, rng):
    index, x, path = saved
    with open(path, "rb") as f:
        original = f.read()
    loaded = adanns.load(path, mmap=True)
    loaded.add(gaussian(rng, 10, 24))
    kw = {"nprobe": 8} if isinstance(loaded, adanns.IVFIndex) else {}
    first = np.unique(np.asarray(loaded.search(x[:4], k=1, **kw).ids)[:, 0])
    loaded.remove(first)
    del loaded
    with open(path, "rb") as f:
        assert f.read() == original
    _assert_same_index(index, adanns.load(path))


def test_empty_indexes_roundtrip(tmp_path, rng):
    x = gaussian(rng, 50, 6)
    flat = adanns.FlatIndex(6, metric="l2")
    ivf = adanns.IVFIndex(6, 4, metric="cosine")
    ivf.train(x)
    for index in (flat, ivf):
        path = str(tmp_path / f"{type(index).__name__}.adanns")
        index.save(path)
        for mmap in (False, True):
            loaded = adanns.load(path, mmap=mmap)
            _assert_same_index(index, loaded)
            loaded.add(x[:3])
            assert len(loaded) == 3


def test_saving_twice_overwrites(tmp_path, rng):
    x = gaussian(rng, 30, 6)
    index = adanns.FlatIndex(6)
    index.add(x)
    path = str(tmp_path / "a.adanns")
    index.save(path)
    index.add(gaussian(rng, 5, 6))
    index.save(path)
    assert len(adanns.load(path)) == 35


# --------------------------------------------------------------------------- corruption


def _corrupt_copy(path, tmp_path, name, fn):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data = fn(data)
    out = str(tmp_path / name)
    with open(out, "wb") as f:
        f.write(bytes(data))
    return out


CUTS = {"empty": lambda n: 0, "1byte": lambda n: 1, "7bytes": lambda n: 7, "quarter": lambda n: n // 4,
        "half": lambda n: n // 2, "minus1": lambda n: n - 1}


@pytest.mark.parametrize("saved", [("flat", "ip"), ("ivf", "l2")], indirect=True, ids=["flat", "ivf"])
@pytest.mark.parametrize("cut", list(CUTS))
@pytest.mark.parametrize("mmap,verify", [(False, True), (True, True), (True, False)])
def test_truncated_file_raises_value_error(saved, cut, mmap, verify, tmp_path):
    # even without checksum verification a short file must be refused (else mmap reads past the end)
    _, _, path = saved
    size = os.path.getsize(path)
    bad = _corrupt_copy(path, tmp_path, "cut.adanns", lambda b: b[: CUTS[cut](size)])
    with pytest.raises(ValueError):
        adanns.load(bad, mmap=mmap, verify=verify)


FLIPS = {"header0": lambda n: 0, "header5": lambda n: 5, "header17": lambda n: 17, "middle": lambda n: n // 2,
         "three_quarters": lambda n: 3 * n // 4, "last": lambda n: n - 1}


@pytest.mark.parametrize("saved", [("flat", "cosine"), ("ivf", "ip")], indirect=True, ids=["flat", "ivf"])
@pytest.mark.parametrize("where", list(FLIPS))
@pytest.mark.parametrize("mmap", [False, True])
def test_flipped_byte_raises_value_error(saved, where, mmap, tmp_path):
    _, _, path = saved
    size = os.path.getsize(path)
    pos = FLIPS[where](size)

    def flip(b):
        b[pos] ^= 0x5A
        return b

    bad = _corrupt_copy(path, tmp_path, "flip.adanns", flip)
    with pytest.raises(ValueError):
        adanns.load(bad, mmap=mmap)


def test_appended_garbage_raises_value_error(tmp_path, rng):
    index, _ = _build("flat", "ip", rng, n=50)
    path = str(tmp_path / "a.adanns")
    index.save(path)
    bad = _corrupt_copy(path, tmp_path, "long.adanns", lambda b: b + b"\0" * 16)
    with pytest.raises(ValueError):
        adanns.load(bad)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world\n" * 100, bytes(4096), np.arange(1000, dtype=np.float32).tobytes()],
    ids=["empty", "text", "zeros", "floats"],
)
def test_loading_a_non_adanns_file_raises_value_error(content, tmp_path):
    path = str(tmp_path / "x.bin")
    with open(path, "wb") as f:
        f.write(content)
    for mmap in (False, True):
        with pytest.raises(ValueError):
            adanns.load(path, mmap=mmap)


def test_loading_an_npy_file_raises_value_error(tmp_path, rng):
    path = str(tmp_path / "x.npy")
    np.save(path, gaussian(rng, 10, 4))
    with pytest.raises(ValueError):
        adanns.load(path)


def test_random_bytes_never_load(tmp_path, rng):
    path = str(tmp_path / "r.bin")
    for size in (3, 64, 1000, 5000):
        with open(path, "wb") as f:
            f.write(rng.integers(0, 256, size=size, dtype=np.uint8).tobytes())
        with pytest.raises(ValueError):
            adanns.load(path)


@pytest.mark.parametrize("saved", [("flat", "l2"), ("ivf", "cosine")], indirect=True, ids=["flat", "ivf"])
def test_unverified_mmap_load_of_a_good_file_gives_identical_results(saved, rng):
    index, _, path = saved
    q = gaussian(rng, 9, 24)
    _assert_same_results(_search_all(index, q), _search_all(adanns.load(path, mmap=True, verify=False), q))


@pytest.mark.parametrize("saved", [("flat", "ip"), ("ivf", "l2")], indirect=True, ids=["flat", "ivf"])
def test_saving_over_the_file_an_index_is_mapped_from(saved, rng):
    index, _, path = saved
    q = gaussian(rng, 9, 24)
    loaded = adanns.load(path, mmap=True)
    want = _search_all(loaded, q)
    other, _ = _build("flat", "ip", rng, n=30)
    other.save(path)  # replaces the file the mapping came from
    _assert_same_results(want, _search_all(loaded, q))
    loaded.add(gaussian(rng, 5, 24))
    loaded.save(path)  # and the mapped index writes itself over its own source
    again = adanns.load(path)
    _assert_same_index(loaded, again)
    _assert_same_results(_search_all(loaded, q), _search_all(again, q))
