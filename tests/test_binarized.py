"""BinarizedIndex (float vectors in, sign codes inside, re-scored) against a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

import adanns


def reference(x, q, bits, k, rerank_k, rerank_dim, nbits=None):
    """Sign codes of the centred first bits coordinates; the rerank_k nearest by Hamming distance on the
    first nbits (ties: smaller id); the best k of those by inner product on rerank_dim coordinates."""
    nbits = bits if nbits is None else nbits
    mean = x[:, :bits].astype(np.float64).mean(axis=0)
    xc = (x[:, :nbits].astype(np.float64) - mean[:nbits]) > 0
    qc = (q[:, :nbits].astype(np.float64) - mean[:nbits]) > 0
    out = []
    for i in range(len(q)):
        ham = (xc != qc[i]).sum(axis=1)
        short = np.lexsort((np.arange(len(x)), ham))[:rerank_k]
        s = x[short, :rerank_dim].astype(np.float64) @ q[i, :rerank_dim].astype(np.float64)
        order = np.lexsort((short, -s))[:k]
        out.append(short[order])
    return np.array(out)


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_search_equals_the_numpy_reference(rng, bits):
    x = rng.standard_normal((700, 64)).astype(np.float32)
    q = rng.standard_normal((9, 64)).astype(np.float32)
    index = adanns.BinarizedIndex(64, bits=bits)
    index.train(x)
    index.add(x)
    res = index.search(q, k=5, rerank_k=30, rerank_dim=48)
    np.testing.assert_array_equal(res.ids, reference(x, q, bits, 5, 30, 48))
    want = np.einsum("ij,ij->i", x[res.ids[:, 0], :48].astype(np.float64), q[:, :48].astype(np.float64))
    np.testing.assert_allclose(res.scores[:, 0], want, rtol=1e-4, atol=1e-4)
    # Cost: encoding + one op per 64-bit word per code + rerank_dim per shortlisted row.
    np.testing.assert_allclose(res.mflops, (bits + 700 * -(-bits // 64) + 30 * 48) * 1e-6)


def test_prefix_queries_search_the_code_prefix(rng):
    x = rng.standard_normal((500, 64)).astype(np.float32)
    q = rng.standard_normal((6, 64)).astype(np.float32)
    index = adanns.BinarizedIndex(64, bits=64)
    index.train(x)
    index.add(x)
    res = index.search(q[:, :21], k=4, rerank_k=25)  # 21 coordinates: the first 16 bits, re-scored on 21
    np.testing.assert_array_equal(res.ids, reference(x, q[:, :21], 64, 4, 25, 21, nbits=16))


def test_itq_round_trip_and_bad_input(rng, tmp_path):
    x = rng.standard_normal((400, 32)).astype(np.float32)
    q = rng.standard_normal((5, 32)).astype(np.float32)
    index = adanns.BinarizedIndex(32, bits=32, rotation="itq", seed=3)
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(q)
    index.train(x)
    index.add(x, ids=np.arange(400) * 2)
    before = index.search(q, k=3)
    index.save(tmp_path / "b.adanns")
    back = adanns.load(tmp_path / "b.adanns")
    assert isinstance(back, adanns.BinarizedIndex) and back.rotation == "itq" and len(back) == 400
    after = back.search(q, k=3)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)
    with pytest.raises(ValueError, match="at least bits = 32"):
        index.search(q[:, :16])  # a rotation mixes every coordinate into every bit
    with pytest.raises(ValueError, match="rerank_k"):
        index.search(q, k=10, rerank_k=5)
    with pytest.raises(ValueError, match="multiple of 8"):
        adanns.BinarizedIndex(32, bits=12)
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, 32), np.nan, np.float32))
    assert len(index) == 400
    # A plain code index (no binarizer in its metadata) loads as a BinaryIndex.
    codes = adanns.BinaryIndex(32, codes=np.zeros((3, 4), np.uint8))
    codes.save(tmp_path / "c.adanns")
    assert isinstance(adanns.load(tmp_path / "c.adanns"), adanns.BinaryIndex)
