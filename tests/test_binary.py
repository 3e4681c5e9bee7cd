"""BinaryIndex: Hamming kernels at every SIMD level, top-k and range search against numpy brute force,
multi-index hashing (property test), lookup, re-ranking, save/load and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adanns
from adanns import _core

NBITS = [8, 16, 24, 56, 64, 72, 128, 192, 256, 264, 512, 520, 1024, 4096]


def _codes(rng, n, nbits):
    return rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)


def _ref_dist(q, x, bits):
    """Hamming distances on the first `bits` bits, the independent way: unpack and count."""
    b = bits // 8
    return np.unpackbits(q[:, None, :b] ^ x[None, :, :b], axis=2).sum(axis=2).astype(np.int64)


def _ref_topk(q, x, ids, k, bits):
    d = _ref_dist(q, x, bits)
    out_d = np.full((len(q), k), np.iinfo(np.int32).max, np.int64)
    out_i = np.full((len(q), k), -1, np.int64)
    for i in range(len(q)):
        order = np.lexsort((ids, d[i]))[:k]  # distance, then smaller id
        out_d[i, :len(order)] = d[i, order]
        out_i[i, :len(order)] = ids[order]
    return out_d, out_i


def _clustered(rng, n, nbits, centres=5, flips=3):
    """Codes near a few centres: many ties and many hits within small radii."""
    c = rng.integers(0, 2, (centres, nbits), dtype=np.uint8)
    bits = c[rng.integers(0, centres, n)]
    for _ in range(flips):
        bits[np.arange(n), rng.integers(0, nbits, n)] ^= 1
    return np.packbits(bits, axis=1)


# ---------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("nbits", NBITS)
def test_hamming_kernel_equals_unpackbits_at_every_level_and_prefix(each_simd_level, nbits, rng):
    q, x = _codes(rng, 3, nbits), _codes(rng, 37, nbits)
    for bits in sorted({8, max(8, nbits // 16 * 8), nbits - 8 if nbits > 8 else 8, nbits}):
        np.testing.assert_array_equal(_core.kernel_hamming(q, x, bits), _ref_dist(q, x, bits))


def test_hamming_kernel_name_follows_the_level():
    previous = adanns.simd_level()
    try:
        adanns.set_simd_level("scalar")
        assert adanns.hamming_kernel() == "scalar-swar"
        if "avx512" in adanns.available_simd_levels():
            adanns.set_simd_level("avx512")
            want = "avx512-vpopcntdq" if _core.cpu_has_vpopcntdq() else "avx2-nibble"
            assert adanns.hamming_kernel() == want
    finally:
        adanns.set_simd_level(previous)


# ---------------------------------------------------------------------------- top-k search
@pytest.mark.parametrize("nbits", [8, 64, 72, 256, 1024])
def test_search_equals_brute_force_with_ties_to_smaller_id(each_simd_level, nbits, rng):
    x = _clustered(rng, 700, nbits)
    ids = rng.permutation(10**6)[:700].astype(np.int64)
    index = adanns.BinaryIndex(nbits, codes=x, ids=ids)
    q = np.concatenate([_clustered(rng, 6, nbits), _codes(rng, 3, nbits)])
    for bits in sorted({8, nbits // 2 // 8 * 8 or 8, nbits}):
        res = index.search(q, k=25, search_bits=bits)
        ref_d, ref_i = _ref_topk(q, x, ids, 25, bits)
        np.testing.assert_array_equal(res.distances, ref_d)
        np.testing.assert_array_equal(res.ids, ref_i)
        np.testing.assert_array_equal(res.cost, np.full(len(q), 700 * -(-bits // 64)))


def test_search_pads_when_fewer_codes_than_k(rng):
    index = adanns.BinaryIndex(32, codes=_codes(rng, 3, 32))
    d, i = index.search(_codes(rng, 2, 32), k=5)
    assert (i[:, 3:] == -1).all() and (d[:, 3:] == np.iinfo(np.int32).max).all()
    assert sorted(i[0, :3]) == [0, 1, 2]


def test_narrow_query_is_a_prefix_search(rng):
    x = _codes(rng, 300, 128)
    index = adanns.BinaryIndex(128, codes=x)
    q = _codes(rng, 4, 128)
    a = index.search(q[:, :4], k=10)
    b = index.search(q, k=10, search_bits=32)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


def test_results_do_not_depend_on_thread_count(rng):
    x = _clustered(rng, 3000, 64)
    index = adanns.BinaryIndex(64, codes=x)
    q = _clustered(rng, 50, 64)
    one = index.search(q, k=10, threads=1)
    many = index.search(q, k=10, threads=3)
    np.testing.assert_array_equal(one.ids, many.ids)
    r1, r3 = index.range_search(q, 4, threads=1), index.range_search(q, 4, threads=3)
    np.testing.assert_array_equal(r1.ids, r3.ids)


def test_remove_then_search_matches_brute_force(rng):
    x = _clustered(rng, 400, 64)
    index = adanns.BinaryIndex(64, codes=x)
    gone = rng.choice(400, 150, replace=False)
    assert index.remove(gone) == 150
    keep = np.setdiff1d(np.arange(400), gone)
    q = _clustered(rng, 5, 64)
    ref_d, ref_i = _ref_topk(q, x[keep], keep, 12, 64)
    res = index.search(q, k=12)
    np.testing.assert_array_equal(res.ids, ref_i)
    np.testing.assert_array_equal(res.distances, ref_d)
    with pytest.raises(KeyError):
        index.remove([int(gone[0])])


# ---------------------------------------------------------------------------- range search / MIH
def _ref_range(q, x, ids, radius, bits):
    d = _ref_dist(q, x, bits)
    out = []
    for i in range(len(q)):
        hit = np.nonzero(d[i] <= radius)[0]
        order = np.lexsort((ids[hit], d[i, hit]))
        out.append((d[i, hit][order], ids[hit][order]))
    return out


def _assert_range_equal(res, ref):
    assert len(res) == len(ref)
    for i, (rd, ri) in enumerate(ref):
        d, ids = res[i]
        np.testing.assert_array_equal(ids, ri)
        np.testing.assert_array_equal(d, rd)


@given(seed=st.integers(0, 2**32 - 1), nbytes=st.sampled_from([1, 2, 3, 5, 8, 9, 16, 32]),
       radius=st.integers(0, 6), substrings=st.integers(0, 8), prefix=st.integers(1, 32))
def test_hashed_range_search_returns_exactly_the_brute_force_set(seed, nbytes, radius, substrings, prefix):
    rng = np.random.default_rng(seed)
    nbits = 8 * nbytes
    substrings = min(substrings, nbytes)
    if substrings and -(-nbytes // substrings) > 8:
        substrings = -(-nbytes // 8)
    x = _clustered(rng, 300, nbits, centres=4, flips=int(rng.integers(0, 5)))
    ids = rng.permutation(5000)[:300].astype(np.int64)
    index = adanns.BinaryIndex(nbits, codes=x, ids=ids)
    index.build_hash(substrings or None)
    q = np.concatenate([_clustered(rng, 4, nbits, centres=4), x[:2]])
    bits = 8 * min(prefix, nbytes)
    ref = _ref_range(q, x, ids, radius, bits)
    _assert_range_equal(index.range_search(q, radius, search_bits=bits, method="scan"), ref)
    try:
        res = index.range_search(q, radius, search_bits=bits, method="hash")
    except ValueError as e:  # the prefix holds no whole substring
        assert "substring" in str(e)
        return
    # (a radius whose probes would dwarf the codes falls back to a scan; the set must match either way)
    _assert_range_equal(res, ref)


def test_auto_range_search_uses_the_hash_for_small_radii(rng):
    x = _codes(rng, 20000, 64)
    index = adanns.BinaryIndex(64, codes=x)
    res = index.range_search(x[:5], 1)
    assert res.used_hash and index.hash_substrings > 0
    assert (res.cost < 20000).all()
    assert not index.range_search(x[:5], 30).used_hash
    index.add(_codes(rng, 1, 64))
    assert index.hash_substrings == 0  # dropped by add, rebuilt on demand


def test_lookup_finds_exact_matches_only(rng):
    x = _clustered(rng, 500, 64, flips=1)
    index = adanns.BinaryIndex(64, codes=x, ids=np.arange(500) + 7)
    for row in (0, 10, 99):
        want = np.nonzero((x == x[row]).all(axis=1))[0] + 7
        np.testing.assert_array_equal(index.lookup(x[row]), np.sort(want))
    assert index.lookup(np.bitwise_not(x[0])).size == 0 or (x == np.bitwise_not(x[0])).all(axis=1).any()
    np.testing.assert_array_equal(
        index.lookup(x[3, :2]), np.sort(np.nonzero((x[:, :2] == x[3, :2]).all(axis=1))[0] + 7))
    assert adanns.BinaryIndex(64).lookup(x[0]).size == 0


# ---------------------------------------------------------------------------- re-ranking
def test_search_rerank_reorders_the_hamming_shortlist_by_inner_product(rng):
    n, d = 600, 24
    v = rng.standard_normal((n, d)).astype(np.float32)
    codes = adanns.binarize(v, 16)
    index = adanns.BinaryIndex(16, codes=codes, vectors=v)
    assert index.dim == d
    qv = rng.standard_normal((5, d)).astype(np.float32)
    qc = adanns.binarize(qv, 16, fit_on=v)
    res = index.search_rerank(qc, qv, k=7, shortlist=60, rerank_dim=12)
    _, short = _ref_topk(qc, codes, np.arange(n), 60, 16)
    for i in range(5):
        s = v[short[i]][:, :12].astype(np.float64) @ qv[i, :12]
        order = np.lexsort((short[i], -s))[:7]
        np.testing.assert_array_equal(res.ids[i], short[i][order])
        np.testing.assert_allclose(res.scores[i], s[order], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(res.cost, np.full(5, n * 1 + 60 * 12))
    assert index.estimate_cost(shortlist=60, rerank_dim=12) == n + 60 * 12


# ---------------------------------------------------------------------------- files
def test_save_load_roundtrip_keeps_codes_vectors_ids_and_results(tmp_path, rng):
    x = _clustered(rng, 300, 72)
    v = rng.standard_normal((300, 5)).astype(np.float32)
    index = adanns.BinaryIndex(72, codes=x, vectors=v, ids=np.arange(300) * 3)
    index.remove([3, 6])
    path = tmp_path / "b.adanns"
    index.save(path)
    back = adanns.load(path)
    assert isinstance(back, adanns.BinaryIndex) and back.nbits == 72 and back.dim == 5 and len(back) == 298
    np.testing.assert_array_equal(back.ids(), index.ids())
    np.testing.assert_array_equal(back.codes(), index.codes())
    np.testing.assert_array_equal(back.vectors(), index.vectors())
    q = _clustered(rng, 4, 72)
    np.testing.assert_array_equal(back.search(q, 9).ids, index.search(q, 9).ids)
    back.add(x[:1], vectors=v[:1])  # continues after the largest id
    assert back.ids()[-1] == 3 * 299 + 1


def test_truncated_or_corrupted_file_raises_value_error(tmp_path, rng):
    index = adanns.BinaryIndex(64, codes=_codes(rng, 100, 64))
    path = tmp_path / "b.adanns"
    index.save(path)
    blob = path.read_bytes()
    (tmp_path / "t.adanns").write_bytes(blob[:-9])
    with pytest.raises(ValueError):
        adanns.load(tmp_path / "t.adanns")
    bad = bytearray(blob)
    bad[-20] ^= 0x40
    (tmp_path / "c.adanns").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="checksum"):
        adanns.load(tmp_path / "c.adanns")


# ---------------------------------------------------------------------------- bad input
@pytest.fixture
def small(rng):
    return adanns.BinaryIndex(64, codes=_codes(rng, 50, 64))


@pytest.mark.parametrize("nbits", [0, 7, 12, 4104, -8])
def test_bad_nbits_raises_value_error(nbits):
    with pytest.raises(ValueError, match="nbits"):
        adanns.BinaryIndex(nbits)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32, bool])
def test_codes_must_be_uint8(small, dtype):
    with pytest.raises(TypeError, match="uint8"):
        small.add(np.zeros((2, 8), dtype))
    with pytest.raises(TypeError, match="uint8"):
        small.search(np.zeros((2, 8), dtype))
    assert len(small) == 50


def test_wrong_code_width_raises_value_error_and_leaves_index_unchanged(small, rng):
    with pytest.raises(ValueError, match="8 bytes"):
        small.add(_codes(rng, 3, 72))
    with pytest.raises(ValueError, match="1..8 bytes"):
        small.search(_codes(rng, 3, 72))
    with pytest.raises(ValueError, match="2-D"):
        small.add(np.zeros((2, 2, 8), np.uint8))
    assert len(small) == 50


@pytest.mark.parametrize("k", [0, -1])
def test_nonpositive_k_raises_value_error(small, k):
    with pytest.raises(ValueError, match="k must be"):
        small.search(np.zeros((1, 8), np.uint8), k=k)


@pytest.mark.parametrize("bits", [4, 12, 72, 0])
def test_bad_search_bits_raise_value_error(small, bits):
    with pytest.raises(ValueError, match="search_bits"):
        small.search(np.zeros((1, 8), np.uint8), search_bits=bits)


def test_search_bits_beyond_a_narrow_query_raise_value_error(small):
    with pytest.raises(ValueError, match="exceeds"):
        small.search(np.zeros((1, 2), np.uint8), search_bits=32)


def test_bad_radius_and_method_raise(small):
    q = np.zeros((1, 8), np.uint8)
    with pytest.raises(ValueError, match="radius"):
        small.range_search(q, -1)
    with pytest.raises(TypeError, match="radius"):
        small.range_search(q, 1.5)
    with pytest.raises(ValueError, match="method"):
        small.range_search(q, 1, method="mih")


def test_duplicate_ids_and_vectors_mismatch_leave_index_unchanged(small, rng):
    with pytest.raises(ValueError, match="already"):
        small.add(_codes(rng, 2, 64), ids=[1, 1000])
    with pytest.raises(ValueError, match="no float vectors"):
        small.add(_codes(rng, 2, 64), vectors=np.zeros((2, 3), np.float32))
    withv = adanns.BinaryIndex(64, dim=3)
    with pytest.raises(ValueError, match="vectors"):
        withv.add(_codes(rng, 2, 64))
    with pytest.raises(ValueError, match="rows"):
        withv.add(_codes(rng, 2, 64), vectors=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        withv.add(_codes(rng, 2, 64), vectors=np.array([[0, 0, 0], [0, np.nan, 0]], np.float32))
    assert len(small) == 50 and len(withv) == 0


def test_rerank_argument_errors(rng):
    v = rng.standard_normal((20, 4)).astype(np.float32)
    index = adanns.BinaryIndex(8, codes=_codes(rng, 20, 8), vectors=v)
    q = _codes(rng, 2, 8)
    with pytest.raises(ValueError, match="shortlist"):
        index.search_rerank(q, v[:2], k=5, shortlist=4)
    with pytest.raises(ValueError, match="rerank_dim"):
        index.search_rerank(q, v[:2, :2], k=5, rerank_dim=3)
    with pytest.raises(ValueError, match="query vectors"):
        index.search_rerank(q, v[:3], k=5)
    with pytest.raises(RuntimeError, match="no float vectors"):
        adanns.BinaryIndex(8).search_rerank(q, v[:2])


def test_bad_hash_substrings_raise_value_error(small):
    with pytest.raises(ValueError, match="substrings"):
        small.build_hash(9)
    wide = adanns.BinaryIndex(1024)
    with pytest.raises(ValueError, match="at most 8 bytes"):
        wide.build_hash(2)


def test_hash_with_a_huge_radius_falls_back_to_the_scan(rng):
    x = _codes(rng, 200, 512)
    index = adanns.BinaryIndex(512, codes=x)
    index.build_hash(8)  # 64-bit substrings: radius 200 would need C(64, 25) probes per table
    res = index.range_search(x[:3], 200, method="hash")
    assert not res.used_hash
    _assert_range_equal(res, _ref_range(x[:3], x, np.arange(200), 200, 512))


def test_lookup_on_a_prefix_narrower_than_any_substring_scans(rng):
    x = _clustered(rng, 300, 256, flips=1)
    index = adanns.BinaryIndex(256, codes=x)
    index.build_hash(4)  # 8-byte substrings
    want = np.nonzero((x[:, :2] == x[5, :2]).all(axis=1))[0]
    np.testing.assert_array_equal(index.lookup(x[5, :2]), want)
