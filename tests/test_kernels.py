"""Distance kernels at every SIMD level against a float64 numpy reference.

Sizes are awkward on purpose (tails of every vector width; faiss-style list of d),
and every kernel reads only a prefix `dim` of wider rows.
"""

from __future__ import annotations

import numpy as np
import pytest

import adanns
from adanns import _core

DIMS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 384, 1025]
SIZES = [1, 2, 3, 5, 17, 33]
KNOWN_LEVELS = {"scalar", "avx2", "avx512"}
REL = 1e-5


def _prefixes(d: int, rng: np.random.Generator) -> list[int]:
    p = {1, d // 2, d - 1, d, int(rng.integers(1, d + 1)), int(rng.integers(1, d + 1))}
    return sorted(x for x in p if x >= 1)


def _data(rng, d):
    q = rng.standard_normal((max(SIZES), d)).astype(np.float32)
    x = rng.standard_normal((max(SIZES), d)).astype(np.float32)
    return q, x


def _ref_ip(q, x, p):
    q64 = q[:, :p].astype(np.float64)
    x64 = x[:, :p].astype(np.float64)
    return q64 @ x64.T, np.abs(q64) @ np.abs(x64).T  # value, scale = sum |q_i x_i|


def _ref_l2(q, x, p):
    diff = q[:, None, :p].astype(np.float64) - x[None, :, :p].astype(np.float64)
    val = (diff * diff).sum(-1)
    return val, val  # scale = the squared distance itself


def _assert_close(got, want, scale, ctx):
    got = np.asarray(got)
    assert got.dtype == np.float32, f"{ctx}: dtype {got.dtype}"
    assert got.shape == want.shape, f"{ctx}: shape {got.shape} != {want.shape}"
    err = np.abs(got.astype(np.float64) - want)
    bound = REL * scale + 1e-30
    bad = np.argwhere(err > bound)
    assert bad.size == 0, (
        f"{ctx}: {len(bad)} entries off, first at {tuple(bad[0])}: "
        f"got {got[tuple(bad[0])]!r} want {want[tuple(bad[0])]!r}"
    )


# --------------------------------------------------------------------------- SIMD level control


def test_available_levels_contain_scalar_and_only_known_names():
    levels = adanns.available_simd_levels()
    assert "scalar" in levels
    assert set(levels) <= KNOWN_LEVELS, levels
    assert adanns.simd_level() in levels


def test_simd_level_reports_the_level_that_was_set(each_simd_level):
    assert adanns.simd_level() == each_simd_level


def test_set_simd_level_restores_by_name():
    previous = adanns.simd_level()
    try:
        for level in adanns.available_simd_levels():
            adanns.set_simd_level(level)
            assert adanns.simd_level() == level
    finally:
        adanns.set_simd_level(previous)
    assert adanns.simd_level() == previous


@pytest.mark.parametrize("name", ["", "sse9", "AVX2 ", "neon", "fastest"])
def test_set_simd_level_rejects_unknown_names(name):
    before = adanns.simd_level()
    with pytest.raises(ValueError):
        adanns.set_simd_level(name)
    assert adanns.simd_level() == before


def test_set_simd_level_rejects_levels_the_cpu_lacks():
    missing = sorted(KNOWN_LEVELS - set(adanns.available_simd_levels()))
    if not missing:
        pytest.skip("this CPU supports every known level")
    before = adanns.simd_level()
    for name in missing:
        with pytest.raises(ValueError):
            adanns.set_simd_level(name)
        assert adanns.simd_level() == before


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("d", DIMS)
def test_kernel_block_matches_float64(each_simd_level, d, metric, rng):
    q, x = _data(rng, d)
    ref = _ref_ip if metric == "ip" else _ref_l2
    for p in _prefixes(d, rng):
        want, scale = ref(q, x, p)
        for nq in SIZES:
            for nx in SIZES:
                got = _core.kernel_block(q[:nq], x[:nx], p, metric)
                _assert_close(got, want[:nq, :nx], scale[:nq, :nx],
                              f"{each_simd_level} d={d} dim={p} nq={nq} nx={nx} {metric}")


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("d", DIMS)
def test_kernel_one_to_many_matches_float64(each_simd_level, d, metric, rng):
    q, x = _data(rng, d)
    ref = _ref_ip if metric == "ip" else _ref_l2
    for p in _prefixes(d, rng):
        want, scale = ref(q[:1], x, p)
        for nx in SIZES:
            got = _core.kernel_one_to_many(q[0], x[:nx], p, metric)
            _assert_close(got, want[0, :nx], scale[0, :nx],
                          f"{each_simd_level} d={d} dim={p} nx={nx} {metric}")


@pytest.mark.parametrize("d", DIMS)
def test_kernel_gemm_ip_matches_float64(each_simd_level, d, rng):
    q, x = _data(rng, d)
    for p in _prefixes(d, rng):
        want, scale = _ref_ip(q, x, p)
        for nq in SIZES:
            for nx in SIZES:
                got = _core.kernel_gemm_ip(q[:nq], x[:nx], p)
                _assert_close(got, want[:nq, :nx], scale[:nq, :nx],
                              f"{each_simd_level} d={d} dim={p} nq={nq} nx={nx}")


def test_kernel_gemm_ip_matches_float64_on_larger_blocks(each_simd_level, rng):
    # sizes that cross typical packing panels (multiples of 4/8/16 plus tails)
    for nq, nx, d in [(64, 257, 33), (37, 129, 100), (8, 1000, 17), (129, 65, 384)]:
        q = rng.standard_normal((nq, d)).astype(np.float32)
        x = rng.standard_normal((nx, d)).astype(np.float32)
        for p in (1, d // 2, d):
            want, scale = _ref_ip(q, x, p)
            _assert_close(_core.kernel_gemm_ip(q, x, p), want, scale,
                          f"{each_simd_level} nq={nq} nx={nx} d={d} dim={p}")


@pytest.mark.parametrize("d", DIMS)
def test_kernel_norms_sq_matches_float64(each_simd_level, d, rng):
    _, x = _data(rng, d)
    for p in _prefixes(d, rng):
        want = (x[:, :p].astype(np.float64) ** 2).sum(1)
        for nx in SIZES:
            got = _core.kernel_norms_sq(x[:nx], p)
            _assert_close(got, want[:nx], want[:nx], f"{each_simd_level} d={d} dim={p} nx={nx}")


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_kernels_accept_query_and_rows_of_different_widths(each_simd_level, metric, rng):
    # q: (nq, dq), x: (nx, dx) with dq != dx, both >= dim; only the first dim coords count.
    ref = _ref_ip if metric == "ip" else _ref_l2
    for dq, dx, p in [(17, 40, 17), (40, 17, 17), (9, 33, 5), (100, 64, 63)]:
        q = rng.standard_normal((5, dq)).astype(np.float32)
        x = rng.standard_normal((33, dx)).astype(np.float32)
        want, scale = ref(q, x, p)
        ctx = f"{each_simd_level} dq={dq} dx={dx} dim={p} {metric}"
        _assert_close(_core.kernel_block(q, x, p, metric), want, scale, "block " + ctx)
        _assert_close(_core.kernel_one_to_many(q[0], x, p, metric), want[0], scale[0], "one_to_many " + ctx)
        if metric == "ip":
            _assert_close(_core.kernel_gemm_ip(q, x, p), want, scale, "gemm " + ctx)


def test_kernels_ignore_coordinates_beyond_dim(each_simd_level, rng):
    q = rng.standard_normal((5, 33)).astype(np.float32)
    x = rng.standard_normal((17, 33)).astype(np.float32)
    q2, x2 = q.copy(), x.copy()
    q2[:, 20:] = 1e30
    x2[:, 20:] = np.nan
    for metric in ("ip", "l2"):
        np.testing.assert_array_equal(_core.kernel_block(q, x, 20, metric), _core.kernel_block(q2, x2, 20, metric))
        np.testing.assert_array_equal(
            _core.kernel_one_to_many(q[0], x, 20, metric), _core.kernel_one_to_many(q2[0], x2, 20, metric)
        )
    np.testing.assert_array_equal(_core.kernel_gemm_ip(q, x, 20), _core.kernel_gemm_ip(q2, x2, 20))
    np.testing.assert_array_equal(_core.kernel_norms_sq(x, 20), _core.kernel_norms_sq(x2, 20))
