"""4-bit fast-scan (nbits=4): the register kernel, table quantization, and OPQIndex / IVFOPQIndex on it.

References are numpy computations written independently of the core (integer sums, float64 ADC).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adanns
from adanns import _core


def clustered(n, d, nclusters, seed):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((nclusters, d)) * np.geomspace(3.0, 0.3, d)
    x = centers[rng.integers(0, nclusters, n)] + 0.3 * rng.standard_normal((n, d)) * np.geomspace(1.0, 0.1, d)
    return x.astype(np.float32)


def on_every_level(fn):
    saved = adanns.simd_level()
    try:
        out = {}
        for level in adanns.available_simd_levels():
            adanns.set_simd_level(level)
            out[level] = fn()
        return out
    finally:
        adanns.set_simd_level(saved)


def decoded(codes, codebook):
    return np.concatenate([codebook[j][codes[:, j]] for j in range(codebook.shape[0])], axis=1)


def recall(ids, exact):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids, exact)])


# -------------------------------------------------------------------------------------- kernel
@settings(max_examples=40, deadline=None)
@given(m=st.sampled_from([1, 2, 3, 5, 7, 8, 16, 17, 32, 33, 64, 96]), n=st.integers(0, 200),
       seed=st.integers(0, 2**32 - 1), cut=st.floats(0, 1))
def test_fastscan_kernel_equals_integer_sums_on_every_level(m, n, seed, cut):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 256, (m, 16), dtype=np.uint8)
    codes = rng.integers(0, 16, (n, m), dtype=np.uint8)
    ref = table[np.arange(m)[None, :], codes].astype(np.int64).sum(1)
    threshold = int(cut * 255 * m)
    outs = on_every_level(lambda: _core.kernel_fastscan(table, codes, threshold))
    for level, (sums, passed) in outs.items():
        assert np.array_equal(sums.astype(np.int64), ref), level
        assert np.array_equal(passed, ref <= threshold), level


def test_fastscan_kernel_sums_up_to_the_16_bit_limit():
    m = 257  # 257 * 255 = 65535: the largest sum a uint16 holds
    table = np.full((m, 16), 255, np.uint8)
    codes = np.random.default_rng(0).integers(0, 16, (70, m), dtype=np.uint8)
    for sums, passed in on_every_level(lambda: _core.kernel_fastscan(table, codes, 65534)).values():
        assert np.all(sums == 65535) and not passed.any()


@pytest.mark.parametrize("m", [1, 3, 16, 64, 300])
@pytest.mark.parametrize("negate", [False, True])
def test_quantized_sums_are_within_the_documented_bound(rng, m, negate):
    lut = (rng.standard_normal((m, 16)) * rng.uniform(0.1, 5, (m, 1)) + rng.standard_normal((m, 1))).astype(np.float32)
    table, inv_scale, bias = _core.fastscan_quantize(lut, negate)
    t = -lut.astype(np.float64) if negate else lut.astype(np.float64)
    assert int(table.max(1).astype(np.int64).sum()) <= 65535  # the sums cannot wrap
    assert table.min(1).max() == 0  # each table's minimum goes into the bias
    codes = rng.integers(0, 16, (500, m), dtype=np.uint8)
    exact = t[np.arange(m)[None, :], codes].sum(1)
    s = table[np.arange(m)[None, :], codes].astype(np.int64).sum(1)
    approx = np.float64(bias) + s * np.float64(inv_scale)
    bound = m * inv_scale / 2  # one rounding of at most half a step per sub-quantizer
    slack = 1e-5 * (np.abs(exact).max() + np.abs(t).max(1).sum())  # float32 bias and scale
    assert np.abs(approx - exact).max() <= bound + slack


def cpu_flags():
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((ln for ln in f if ln.startswith("flags")), ":").split(":", 1)[1].split())
    except OSError:
        return set()


def test_each_level_runs_its_own_fastscan_kernel():
    """ADANNS_SIMD=avx512 runs the AVX-512BW kernel exactly when the CPU has AVX512BW (AVX-512F alone
    does not imply the byte shuffles on zmm); the other levels run their own."""
    flags = cpu_flags()
    for level in adanns.available_simd_levels():
        out = subprocess.run([sys.executable, "-c", "from adanns import _core; print(_core.fastscan_kernel_name())"],
                             env=dict(os.environ, ADANNS_SIMD=level), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        want = {"scalar": {"scalar"}, "avx2": {"avx2"}}.get(level)
        if want is None:  # avx512
            want = {"avx512bw"} if "avx512bw" in flags else {"avx2"} if flags else {"avx2", "avx512bw"}
        assert out.stdout.strip() in want, (level, out.stdout)


# pair counts 1, 2, 3, 5, 6, 7, 8, 9: every remainder of the AVX-512 kernel's steps of 4, 2 and 1 pairs
@pytest.mark.parametrize("m", [1, 3, 6, 9, 11, 13, 16, 17])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_many_query_scan_is_identical_on_every_level(rng, m, metric):
    """The exhaustive scan shares each load of codes among 4 (AVX-512BW) or 2 (AVX2) queries; with
    the float tables level-independent (no rotation) every level returns the scalar level's ids and
    scores bit for bit, for query counts that leave every remainder of those groups."""
    n = int(rng.integers(1, 300))
    x = rng.standard_normal((n, 4 * m)).astype(np.float32)
    q = rng.standard_normal((11, 4 * m)).astype(np.float32)
    ix = adanns.OPQIndex(4 * m, m, 4 * m, metric=metric, nbits=4, opq=False, seed=int(rng.integers(1 << 31)))
    ix.train(rng.standard_normal((max(n, 64), 4 * m)).astype(np.float32))
    ix.add(x)
    for nq in (1, 2, 3, 4, 5, 6, 7, 11):
        res = on_every_level(lambda: ix.search(q[:nq], k=min(n, 12)))
        for level, r in res.items():
            assert np.array_equal(r.ids, res["scalar"].ids), (level, nq)
            assert np.array_equal(r.scores, res["scalar"].scores), (level, nq)


# -------------------------------------------------------------------------------------- indices
@pytest.fixture(scope="module")
def corpus():
    x = clustered(3000, 48, 40, seed=11)
    rng = np.random.default_rng(12)
    q = (x[rng.choice(len(x), 30, replace=False)] + 0.1 * rng.standard_normal((30, 48))).astype(np.float32)
    return x, q


def make(kind, metric="ip", m=8, pq_dim=32, **kw):
    if kind == "opq":
        return adanns.OPQIndex(48, m, pq_dim, metric=metric, nbits=4, seed=0, **kw)
    return adanns.IVFOPQIndex(48, 8, 16, m=m, pq_dim=pq_dim, metric=metric, nbits=4, seed=0, **kw)


def exact_scores(x, q, metric):
    x, q = x.astype(np.float64), q.astype(np.float64)
    return q @ x.T if metric == "ip" else -((q[:, None] - x[None]) ** 2).sum(-1)  # larger is better


@pytest.mark.parametrize("kind", ["opq", "ivf"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_rerank_equals_brute_force_rescoring_of_the_shortlist(corpus, kind, metric):
    x, q = corpus
    ix = make(kind, metric)
    ix.train(x, opq_niter=3)
    ix.add(x)
    nprobe = {"nprobe": 3} if kind == "ivf" else {}
    shortlist = ix.search(q, k=40, **nprobe).ids  # what the scan keeps for rerank_k = 40
    res = ix.search(q, k=10, rerank_k=40, rerank_dim=48, **nprobe)
    for i in range(len(q)):
        cand = shortlist[i][shortlist[i] >= 0]
        s = exact_scores(x[cand], q[i:i + 1], metric)[0]
        order = np.lexsort((cand, -s))[:10]
        assert np.array_equal(res.ids[i], cand[order])
        sign = 1 if metric == "ip" else -1
        np.testing.assert_allclose(res.scores[i], sign * s[order], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["opq", "ivf"])
def test_recall_is_sane_on_clustered_data(corpus, kind):
    x, q = corpus
    ix = make(kind, m=16, pq_dim=48)
    ix.train(x, opq_niter=5)
    ix.add(x)
    exact = np.argsort(-exact_scores(x, q, "ip"), 1)[:, :10]
    nprobe = {"nprobe": 4} if kind == "ivf" else {}
    reranked = recall(ix.search(q, k=10, rerank_k=100, rerank_dim=48, **nprobe).ids, exact)
    assert reranked >= 0.9
    if kind == "opq":  # 16 centroids are coarse: the codes alone do about as well as float ADC on them
        rec = decoded(ix.encode(x), ix.codebook.astype(np.float64)) @ ix.rotation.astype(np.float64).T
        float_adc = recall(np.argsort(-(q.astype(np.float64) @ rec.T), 1)[:, :10], exact)
        assert recall(ix.search(q, k=10).ids, exact) >= float_adc - 0.1


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_approximate_scores_are_within_the_quantization_bound(corpus, metric):
    """Without re-ranking the scores are the dequantized fast-scan sums: close to the float ADC score."""
    x, q = corpus
    ix = make("opq", metric, opq=False, store_vectors=False)
    ix.train(x, pq_niter=5)
    ix.add(x)
    res = ix.search(q, k=20)
    book = ix.codebook.astype(np.float64)
    rec = decoded(ix.encode(x), book)
    qp = q[:, :32].astype(np.float64)
    adc = qp @ rec.T if metric == "ip" else -((qp[:, None] - rec[None]) ** 2).sum(-1)
    sign = 1 if metric == "ip" else -1
    for i in range(len(q)):
        lut = _core.pq_lut(q[i, :32], ix.codebook.reshape(-1, 4), 32, 8, 4, metric)
        _, inv_scale, _ = _core.fastscan_quantize(lut, metric == "ip")
        bound = 8 * inv_scale / 2 + 1e-4 * (1 + np.abs(adc[i]).max())
        got = sign * res.scores[i]
        assert np.abs(got - adc[i, res.ids[i]]).max() <= bound
        # ... and the returned rows are the best up to twice that error.
        kth = np.sort(adc[i])[::-1][19]
        assert got.min() >= kth - 2 * bound


@pytest.mark.parametrize("kind", ["opq", "ivf"])
def test_layout_survives_add_remove_upsert_and_load(tmp_path, corpus, kind):
    """Rows added in odd-sized batches, removed and re-added under the same ids, then saved and loaded:
    the same results as a fresh index that only ever held the final rows (same training, same ids)."""
    x, q = corpus
    rng = np.random.default_rng(21)
    a = make(kind, m=5, pq_dim=20)  # m odd: a padding sub-quantizer
    a.train(x, opq_niter=2)
    ids = np.arange(len(x)) + 1000
    for lo, hi in ((0, 1), (1, 34), (34, 97), (97, 1500), (1500, 2999)):
        a.add(x[lo:hi], ids=ids[lo:hi])
    gone = rng.choice(ids[:2999], 400, replace=False)
    a.remove(gone)
    back = rng.choice(gone, 150, replace=False)
    newx = clustered(150, 48, 40, seed=23)
    a.add(newx, ids=back)
    final = {int(i): x[i - 1000] for i in ids[:2999] if i not in set(gone.tolist())}
    final.update({int(i): newx[j] for j, i in enumerate(back)})
    keys = np.array(sorted(final))
    b = make(kind, m=5, pq_dim=20)
    b.train(x, opq_niter=2)
    b.add(np.stack([final[k] for k in keys]), ids=keys)
    nprobe = {"nprobe": 3} if kind == "ivf" else {}
    ra, rb = a.search(q, k=15, **nprobe), b.search(q, k=15, **nprobe)
    assert np.array_equal(ra.ids, rb.ids) and np.array_equal(ra.scores, rb.scores)
    a.save(tmp_path / "fs.adanns")
    c = adanns.load(tmp_path / "fs.adanns")
    assert c.nbits == 4 and len(c) == len(keys)
    for kw in ({}, {"rerank_k": 40, "rerank_dim": 48}):
        r1, r2 = a.search(q, k=15, **nprobe, **kw), c.search(q, k=15, **nprobe, **kw)
        assert np.array_equal(r1.ids, r2.ids) and np.array_equal(r1.scores, r2.scores)


@pytest.mark.parametrize("kind", ["opq", "ivf"])
@pytest.mark.parametrize("m,pq_dim", [(1, 4), (3, 12), (7, 28)])
def test_small_and_odd_m_and_row_counts(corpus, kind, m, pq_dim):
    x, q = corpus
    for n in (1, 31, 33, 95):
        ix = make(kind, m=m, pq_dim=pq_dim, opq=False)
        ix.train(x)
        ix.add(x[:n])
        kw = dict(rerank_k=max(n, 5), rerank_dim=48, **({"nprobe": 8} if kind == "ivf" else {}))
        r = ix.search(q, k=5, **kw)
        exact = np.argsort(-exact_scores(x[:n], q, "ip"), 1, kind="stable")[:, :5]
        kk = min(5, n)
        assert np.array_equal(r.ids[:, :kk], exact[:, :kk])  # every row re-ranked: exact
        assert np.all(r.ids[:, kk:] == -1)


@pytest.mark.parametrize("kind", ["opq", "ivf"])
def test_results_do_not_depend_on_threads(corpus, kind):
    x, q = corpus
    ix = make(kind)
    ix.train(x, opq_niter=2)
    ix.add(x)
    nprobe = {"nprobe": 3} if kind == "ivf" else {}
    for kw in ({}, {"rerank_k": 30, "rerank_dim": 48}):
        a = ix.search(q, k=10, threads=1, **nprobe, **kw)
        b = ix.search(q, k=10, threads=2, **nprobe, **kw)
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores)


def test_mflops_count_16_centroid_tables(corpus):
    x, q = corpus
    ix = make("opq", opq=False)
    ix.train(x)
    ix.add(x)
    np.testing.assert_allclose(ix.search(q, k=10).mflops, (16 * 32 + len(x) * 8) * 1e-6)


def test_bad_input_raises(corpus):
    x, q = corpus
    with pytest.raises(ValueError):
        adanns.OPQIndex(48, 8, 32, nbits=3)
    ix = make("opq")
    ix.train(x, opq_niter=1)
    with pytest.raises(ValueError):
        ix.search(q[:, :16])
    with pytest.raises(ValueError):
        _core.kernel_fastscan(np.zeros((4, 16), np.uint8), np.full((3, 4), 16, np.uint8), 0)
    with pytest.raises(ValueError):
        _core.fastscan_quantize(np.zeros((4, 8), np.float32), False)
