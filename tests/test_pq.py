"""PQ / OPQ on Matryoshka prefixes: quantizer, ADC, OPQIndex, IVFOPQIndex, funnel re-ranking.

References are numpy (float64) computations written independently of the core.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adanns
from adanns import _core


def anisotropic(n, d, seed=0):
    """Correlated data: an anisotropic Gaussian under a random rotation (OPQ has something to learn)."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(4.0, 0.1, d)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return ((rng.standard_normal((n, d)) * scales) @ q.T).astype(np.float32)


def matryoshka(n, d, seed=0):
    """Leading coordinates carry the most variance, like a PCA-ordered embedding."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * np.geomspace(2.0, 0.05, d)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    x = matryoshka(3000, 48, seed=1)
    rng = np.random.default_rng(2)
    q = (x[:20] + 0.05 * rng.standard_normal((20, 48))).astype(np.float32)
    return x, q


def decoded_prefix(codes, codebook):
    """(n, pq_dim) reconstruction from codes, by indexing the (m, ksub, dsub) codebook in numpy."""
    m = codebook.shape[0]
    return np.concatenate([codebook[j][codes[:, j]] for j in range(m)], axis=1)


# ----------------------------------------------------------------------------------- quantizer
@pytest.mark.parametrize("nbits", [8, 4])
def test_encoding_picks_nearest_subcentroid(nbits):
    x = anisotropic(2000, 24, seed=3)
    m, pq_dim = 4, 16
    cb = _core.pq_train(x, pq_dim, m, nbits, 5, 0, 2)
    codes = _core.pq_encode(x, cb, pq_dim, m, nbits, 2)
    book = cb.reshape(m, 1 << nbits, -1).astype(np.float64)
    dsub = pq_dim // m
    for j in range(m):
        sub = x[:, j * dsub:(j + 1) * dsub].astype(np.float64)
        d2 = ((sub[:, None, :] - book[j][None]) ** 2).sum(-1)
        chosen = d2[np.arange(len(x)), codes[:, j]]
        assert np.all(chosen <= d2.min(1) + 1e-4 * (1 + d2.min(1)))


def test_rotation_is_orthonormal(data):
    x, _ = data
    ix = adanns.OPQIndex(48, 8, 32, opq=True, seed=0)
    ix.train(x, opq_niter=5)
    r = ix.rotation.astype(np.float64)
    assert r.shape == (32, 32)
    assert np.abs(r.T @ r - np.eye(32)).max() < 1e-4


def test_opq_distortion_not_worse_than_pq():
    x = anisotropic(4000, 32, seed=5)
    m = 8
    cb_pq = adanns.train_pq(x, m, niter=10, seed=0, threads=2).reshape(m, 256, -1)
    rot, cb_opq = adanns.train_opq(x, m, niter=10, seed=0, threads=2)
    cb_opq = cb_opq.reshape(m, 256, -1)
    y = np.ascontiguousarray(x @ rot)
    e_pq = ((decoded_prefix(_core.pq_encode(x, cb_pq.reshape(-1, 4), 32, m, 8, 2), cb_pq) - x) ** 2).sum(1).mean()
    e_opq = ((decoded_prefix(_core.pq_encode(y, cb_opq.reshape(-1, 4), 32, m, 8, 2), cb_opq) - y) ** 2).sum(1).mean()
    assert e_opq <= e_pq


def test_training_is_seeded(data):
    x, _ = data
    a, b, c = (adanns.OPQIndex(48, 8, 32, seed=s) for s in (3, 3, 4))
    for ix in (a, b, c):
        ix.train(x, opq_niter=3)
    assert np.array_equal(a.rotation, b.rotation) and np.array_equal(a.codebook, b.codebook)
    assert not np.array_equal(a.rotation, c.rotation)


# ----------------------------------------------------------------------------------------- ADC
@settings(max_examples=25, deadline=None)
@given(m=st.sampled_from([1, 3, 4, 5, 8, 12, 16, 17, 32]), n=st.integers(0, 70), ksub=st.sampled_from([16, 256]),
       seed=st.integers(0, 2**16))
def test_adc_kernel_equals_table_sums_on_every_level(m, n, ksub, seed):
    rng = np.random.default_rng(seed)
    lut = rng.standard_normal((m, ksub)).astype(np.float32)
    codes = rng.integers(0, ksub, (n, m), dtype=np.uint8)
    ref = lut[np.arange(m)[None, :], codes].astype(np.float64).sum(1)
    saved = adanns.simd_level()
    try:
        outs = []
        for level in adanns.available_simd_levels():
            adanns.set_simd_level(level)
            outs.append(_core.kernel_adc_scan(lut, codes))
    finally:
        adanns.set_simd_level(saved)
    for out in outs:
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
        assert np.array_equal(out, outs[0])  # same summation order on every level


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("opq", [False, True])
def test_adc_distances_equal_distances_to_decoded_vectors(data, metric, opq):
    x, q = data
    ix = adanns.OPQIndex(48, 8, 32, metric=metric, opq=opq, store_vectors=False, seed=0)
    ix.train(x, opq_niter=3, pq_niter=5)
    ix.add(x)
    codes = ix.encode(x)
    rot = ix.rotation if opq else np.eye(32, dtype=np.float32)
    rec = decoded_prefix(codes, ix.codebook).astype(np.float64)  # in the rotated space
    y = q[:, :32].astype(np.float64) @ rot.astype(np.float64)
    ref = y @ rec.T if metric == "ip" else ((y[:, None, :] - rec[None]) ** 2).sum(-1)
    res = ix.search(q, k=10)
    got = np.take_along_axis(ref, res.ids, 1)
    np.testing.assert_allclose(res.scores, got, rtol=1e-4, atol=1e-3)
    best = np.sort(ref, 1)[:, ::-1][:, :10] if metric == "ip" else np.sort(ref, 1)[:, :10]
    np.testing.assert_allclose(res.scores, best, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("residual", [False, True])
def test_ivfopq_scores_equal_decoded_residuals(data, metric, residual):
    x, q = data
    nlist, dc, pq_dim = 8, 16, 32
    ix = adanns.IVFOPQIndex(48, nlist, dc, m=8, pq_dim=pq_dim, metric=metric, residual=residual, seed=0)
    ix.train(x, opq_niter=3)
    ix.add(x)
    c = ix.centroids.astype(np.float64)
    xd = x[:, :dc].astype(np.float64)
    lists = np.argmax(xd @ c.T, 1) if metric == "ip" else np.argmin(((xd[:, None] - c[None]) ** 2).sum(-1), 1)
    pad = np.zeros((nlist, pq_dim))
    pad[:, :dc] = c
    rec = decoded_prefix(ix.encode(x), ix.codebook).astype(np.float64) @ ix.rotation.astype(np.float64).T
    if residual:
        rec += pad[lists]
    qp = q[:, :pq_dim].astype(np.float64)
    ref = qp @ rec.T if metric == "ip" else ((qp[:, None] - rec[None]) ** 2).sum(-1)
    res = ix.search(q, k=10, nprobe=nlist)  # every list: the same as exhaustive
    np.testing.assert_allclose(res.scores, np.take_along_axis(ref, res.ids, 1), rtol=1e-4, atol=2e-3)
    best = np.sort(ref, 1)[:, ::-1][:, :10] if metric == "ip" else np.sort(ref, 1)[:, :10]
    np.testing.assert_allclose(res.scores, best, rtol=1e-4, atol=2e-3)


def test_rerank_with_full_vectors_returns_exact_scores(data):
    x, q = data
    ix = adanns.IVFOPQIndex(48, 8, 16, m=8, pq_dim=32, seed=0)
    ix.train(x, opq_niter=3)
    ix.add(x)
    res = ix.search(q, k=10, nprobe=4, rerank_k=50, rerank_dim=48)
    exact = np.einsum("qd,qkd->qk", q.astype(np.float64), x[res.ids].astype(np.float64))
    np.testing.assert_allclose(res.scores, exact, rtol=1e-5, atol=1e-4)
    assert np.all(np.diff(res.scores, axis=1) <= 1e-6)


def test_mflops_accounting(data):
    x, q = data
    ix = adanns.OPQIndex(48, 8, 32, opq=True, seed=0)
    ix.train(x, opq_niter=2)
    ix.add(x)
    n = len(x)
    plain = ix.search(q, k=10).mflops
    np.testing.assert_allclose(plain, (32 * 32 + 256 * 32 + n * 8) * 1e-6)
    rr = ix.search(q, k=10, rerank_k=40, rerank_dim=48).mflops
    np.testing.assert_allclose(rr, plain + 40 * 48e-6)
    fun = ix.search(q, k=10, funnel=[(16, 40), (48, 10)], rerank_k=60).mflops
    np.testing.assert_allclose(fun, plain + (60 * 16 + 40 * 48) * 1e-6)


def test_results_do_not_depend_on_threads(data):
    x, q = data
    ix = adanns.IVFOPQIndex(48, 8, 16, m=8, pq_dim=32, seed=0)
    ix.train(x, opq_niter=2)
    ix.add(x)
    a = ix.search(q, k=10, nprobe=3, rerank_k=30, threads=1)
    b = ix.search(q, k=10, nprobe=3, rerank_k=30, threads=3)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores)


def test_nbits4_and_remove(data):
    x, q = data
    ix = adanns.OPQIndex(48, 8, 32, nbits=4, opq=False, seed=0)
    ix.train(x)
    ix.add(x, ids=np.arange(len(x)) + 100)
    assert ix.encode(x).max() < 16
    top = ix.search(q, k=5).ids
    ix.remove(top[:, 0])
    assert len(ix) == len(x) - len(np.unique(top[:, 0]))
    assert not np.isin(top[:, 0], ix.search(q, k=5).ids).any()
    with pytest.raises(KeyError):
        ix.remove([5])


# -------------------------------------------------------------------------------------- funnel
def _funnel_reference(x, q, k, search_dim, shortlist, stages):
    out = []
    for qi in q.astype(np.float64):
        s = x[:, :search_dim].astype(np.float64) @ qi[:search_dim]
        cand = np.lexsort((np.arange(len(x)), -s))[:shortlist]
        for d, keep in stages:
            s = x[cand, :d].astype(np.float64) @ qi[:d]
            cand = cand[np.lexsort((cand, -s))][:keep]
        out.append(cand[:k])
    return np.array(out)


def test_funnel_stages_match_numpy_reference(data):
    x, q = data
    flat = adanns.FlatIndex(48, "ip")
    flat.add(x)
    res = flat.search(q, k=5, search_dim=4, rerank_k=300, funnel=[(8, 100), (16, 40), (48, 5)])
    ref = _funnel_reference(x, q, 5, 4, 300, [(8, 100), (16, 40), (48, 5)])
    assert (res.ids == ref).mean() > 0.99  # float32 vs float64 near-ties may swap a rare pair


@pytest.mark.parametrize("kind", ["flat", "ivf", "opq", "ivfopq"])
def test_single_full_dim_stage_equals_plain_rerank(data, kind):
    x, q = data
    if kind == "flat":
        ix = adanns.FlatIndex(48, "ip")
        kw = dict(search_dim=8)
    elif kind == "ivf":
        ix = adanns.IVFIndex(48, 8, "ip", cluster_dim=16)
        kw = dict(search_dim=16, nprobe=3)
    elif kind == "opq":
        ix = adanns.OPQIndex(48, 8, 32, seed=0)
        kw = {}
    else:
        ix = adanns.IVFOPQIndex(48, 8, 16, m=8, pq_dim=32, seed=0)
        kw = dict(nprobe=3)
    if kind in ("ivf", "opq", "ivfopq"):
        if kind == "ivf":
            ix.train(x)
        else:
            ix.train(x, opq_niter=2)
    ix.add(x)
    plain = ix.search(q, k=10, rerank_k=60, rerank_dim=48, **kw)
    funnel = ix.search(q, k=10, rerank_k=60, funnel=[(48, 10)], **kw)
    assert np.array_equal(plain.ids, funnel.ids)
    assert np.array_equal(plain.scores, funnel.scores)
    np.testing.assert_allclose(plain.mflops, funnel.mflops)
    default_k = ix.search(q, k=10, funnel=[(48, 60)], **kw)  # shortlist defaults to the first keep
    assert np.array_equal(default_k.ids, plain.ids)


def test_funnel_estimate_matches_measured(data):
    x, q = data
    flat = adanns.FlatIndex(48, "ip")
    flat.add(x)
    f = [(16, 200), (32, 100), (48, 25)]
    measured = flat.search(q, k=10, search_dim=8, funnel=f).mflops
    np.testing.assert_allclose(measured, flat.estimate_mflops(k=10, search_dim=8, funnel=f))


# ------------------------------------------------------------------------------ files and input
def test_save_load_round_trip_and_corruption(tmp_path, data):
    x, q = data
    for ix in (adanns.OPQIndex(48, 8, 32, seed=0), adanns.IVFOPQIndex(48, 8, 16, m=8, pq_dim=32, seed=0),
               adanns.OPQIndex(48, 6, 24, opq=False, store_vectors=False)):
        ix.train(x, opq_niter=2)
        ix.add(x[:1001])
        path = tmp_path / "pq.adanns"
        ix.save(path)
        back = adanns.load(path)
        assert type(back) is type(ix) and len(back) == 1001 and back.pq_dim == ix.pq_dim
        kw = dict(rerank_k=30) if ix.store_vectors else {}
        a, b = ix.search(q, k=10, **kw), back.search(q, k=10, **kw)
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores)
        raw = path.read_bytes()
        (tmp_path / "cut.adanns").write_bytes(raw[:-3])
        with pytest.raises(ValueError):
            adanns.load(tmp_path / "cut.adanns")
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x40
        (tmp_path / "flip.adanns").write_bytes(bytes(flipped))
        with pytest.raises(ValueError):
            adanns.load(tmp_path / "flip.adanns")


def test_bad_input_is_rejected_and_changes_nothing(data):
    x, q = data
    with pytest.raises(ValueError, match="multiple of m"):
        adanns.OPQIndex(48, 5, 32)
    with pytest.raises(ValueError, match="metrics"):
        adanns.OPQIndex(48, 8, 32, metric="cosine")
    with pytest.raises(ValueError, match="nbits"):
        adanns.OPQIndex(48, 8, 32, nbits=6)
    with pytest.raises(ValueError, match="pq_dim"):
        adanns.OPQIndex(48, 8, 64)
    ix = adanns.OPQIndex(48, 8, 32, store_vectors=False, seed=0)
    with pytest.raises(RuntimeError):
        ix.search(q)
    with pytest.raises(RuntimeError):
        ix.add(x)
    with pytest.raises(ValueError, match="at least 256"):
        ix.train(x[:100])
    assert not ix.is_trained
    ix.train(x, opq_niter=2)
    ix.add(x[:500])
    with pytest.raises(ValueError, match="dimension"):
        ix.add(x[:10, :40])
    bad = x[:10].copy()
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        ix.add(bad)
    with pytest.raises(TypeError):
        ix.add(x[:10].astype(np.int32))
    with pytest.raises(ValueError, match="duplicate|already"):
        ix.add(x[:2], ids=[3, 3])
    assert len(ix) == 500
    with pytest.raises(ValueError, match="store_vectors"):
        ix.search(q, rerank_k=50)
    with pytest.raises(ValueError, match="at least 32"):
        ix.search(q[:, :16])
    with pytest.raises(ValueError, match="retrain"):
        ix.train(x)
    iv = adanns.IVFOPQIndex(48, 8, 16, m=8, pq_dim=32, seed=0)
    iv.train(x, opq_niter=2)
    iv.add(x)
    with pytest.raises(ValueError, match="fewer than k"):
        iv.search(q, k=10, funnel=[(32, 5)])
    with pytest.raises(ValueError, match="not both"):
        iv.search(q, k=10, funnel=[(32, 50)], rerank_dim=48)
    with pytest.raises(ValueError, match="query length"):
        iv.search(q[:, :40], k=10, funnel=[(48, 50)])
    with pytest.raises(ValueError, match="nprobe"):
        iv.search(q, nprobe=0)
    with pytest.raises(TypeError):
        iv.search(q, funnel=5)
    with pytest.raises(ValueError, match="at least one"):
        iv.search(q, funnel=[])
