"""adanns.kmeans: shape, determinism, prefix use, quality against a numpy Lloyd."""

from __future__ import annotations

import numpy as np
import pytest

import adanns


def _objective(x: np.ndarray, c: np.ndarray) -> float:
    """Sum of squared distances to the nearest centroid (float64)."""
    x = x.astype(np.float64)
    c = c.astype(np.float64)
    d = (x * x).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2.0 * x @ c.T
    return float(np.maximum(d, 0).min(1).sum())


def _numpy_lloyd(x: np.ndarray, k: int, niter: int, rng: np.random.Generator) -> np.ndarray:
    x = x.astype(np.float64)
    c = x[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(niter):
        d = (x * x).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2.0 * x @ c.T
        a = d.argmin(1)
        for j in range(k):
            members = x[a == j]
            if len(members):
                c[j] = members.mean(0)
    return c


def test_kmeans_returns_k_by_d_float32(rng):
    x = rng.standard_normal((300, 12)).astype(np.float32)
    c = adanns.kmeans(x, 7, seed=1)
    assert isinstance(c, np.ndarray)
    assert c.shape == (7, 12)
    assert c.dtype == np.float32
    assert np.all(np.isfinite(c))


def test_kmeans_with_dim_returns_k_by_dim(rng):
    x = rng.standard_normal((300, 12)).astype(np.float32)
    c = adanns.kmeans(x, 5, dim=4, seed=1)
    assert c.shape == (5, 4)
    assert c.dtype == np.float32


def test_kmeans_same_seed_gives_identical_centroids(rng):
    x = rng.standard_normal((800, 16)).astype(np.float32)
    seed = int(rng.integers(0, 2**31))
    np.testing.assert_array_equal(adanns.kmeans(x, 10, seed=seed), adanns.kmeans(x, 10, seed=seed))


def test_kmeans_is_identical_for_any_thread_count(rng):
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    seed = int(rng.integers(0, 2**31))
    one = adanns.kmeans(x, 16, seed=seed, threads=1)
    np.testing.assert_array_equal(one, adanns.kmeans(x, 16, seed=seed, threads=2))
    np.testing.assert_array_equal(one, adanns.kmeans(x, 16, seed=seed, threads=3))
    np.testing.assert_array_equal(one, adanns.kmeans(x, 16, seed=seed))


def test_kmeans_different_seeds_give_different_centroids(rng):
    x = rng.standard_normal((800, 16)).astype(np.float32)
    seed = int(rng.integers(0, 2**31))
    a = adanns.kmeans(x, 10, seed=seed)
    b = adanns.kmeans(x, 10, seed=seed + 1)
    assert not np.array_equal(a, b)


def test_kmeans_uses_only_the_dim_prefix(rng):
    x = rng.standard_normal((500, 20)).astype(np.float32)
    y = x.copy()
    y[:, 6:] = rng.standard_normal((500, 14)).astype(np.float32) * 100.0
    seed = int(rng.integers(0, 2**31))
    a = adanns.kmeans(x, 8, dim=6, seed=seed)
    np.testing.assert_array_equal(a, adanns.kmeans(y, 8, dim=6, seed=seed))
    # and it is the same as clustering the prefix itself
    np.testing.assert_array_equal(a, adanns.kmeans(np.ascontiguousarray(x[:, :6]), 8, seed=seed))


def test_kmeans_objective_no_worse_than_numpy_lloyd(rng):
    # Unstructured data: local optima differ little, so 5% slack over the median of
    # three random-start numpy Lloyd runs is a fair bar.
    x = rng.standard_normal((2000, 8)).astype(np.float32)
    k, niter = 20, 20
    ours = _objective(x, adanns.kmeans(x, k, niter=niter, seed=int(rng.integers(0, 2**31))))
    theirs = sorted(_objective(x, _numpy_lloyd(x, k, niter, rng)) for _ in range(3))
    assert ours <= 1.05 * theirs[1], f"adanns objective {ours:.1f} vs numpy Lloyd {theirs}"


def test_kmeans_objective_improves_on_its_first_iteration(rng):
    x = rng.standard_normal((1000, 8)).astype(np.float32)
    seed = int(rng.integers(0, 2**31))
    few = _objective(x, adanns.kmeans(x, 16, niter=1, seed=seed))
    many = _objective(x, adanns.kmeans(x, 16, niter=25, seed=seed))
    assert many <= few * (1 + 1e-6)


def test_kmeans_recovers_well_separated_blobs(rng):
    k, d, per = 6, 10, 100
    centers = rng.standard_normal((k, d)) * 100.0
    x = np.concatenate([c + rng.standard_normal((per, d)) for c in centers]).astype(np.float32)
    x = x[rng.permutation(len(x))]
    c = adanns.kmeans(x, k, seed=int(rng.integers(0, 2**31))).astype(np.float64)
    dist = np.linalg.norm(centers[:, None, :] - c[None, :, :], axis=-1)
    # every true center has exactly one centroid near it (blob means are within ~0.3 of it)
    assert np.all(dist.min(1) < 1.0), dist.min(1)
    assert sorted(dist.argmin(1).tolist()) == list(range(k))


def test_kmeans_with_k_equal_n_puts_a_centroid_on_every_point(rng):
    x = rng.standard_normal((12, 5)).astype(np.float32)
    c = adanns.kmeans(x, 12, seed=3)
    assert _objective(x, c) == pytest.approx(0.0, abs=1e-6)


def test_kmeans_k_greater_than_n_raises(rng):
    x = rng.standard_normal((10, 4)).astype(np.float32)
    with pytest.raises(ValueError):
        adanns.kmeans(x, 11)


@pytest.mark.parametrize("k", [0, -1])
def test_kmeans_nonpositive_k_raises(rng, k):
    x = rng.standard_normal((10, 4)).astype(np.float32)
    with pytest.raises(ValueError):
        adanns.kmeans(x, k)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_kmeans_non_finite_input_raises_naming_the_row(rng, bad):
    x = rng.standard_normal((10, 4)).astype(np.float32)
    x[3, 2] = bad
    x[7, 0] = bad
    with pytest.raises(ValueError, match=r"\brow 3\b"):
        adanns.kmeans(x, 4)


def test_kmeans_integer_input_raises_type_error():
    with pytest.raises(TypeError):
        adanns.kmeans(np.arange(40, dtype=np.int64).reshape(10, 4), 2)


def test_kmeans_dim_larger_than_width_raises(rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    with pytest.raises(ValueError):
        adanns.kmeans(x, 3, dim=5)


@pytest.mark.parametrize("threads", [0, -1])
def test_kmeans_nonpositive_threads_raises(rng, threads):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    with pytest.raises(ValueError):
        adanns.kmeans(x, 3, threads=threads)


def test_kmeans_accepts_float64_like_float32(rng):
    x = rng.standard_normal((300, 6))
    np.testing.assert_array_equal(
        adanns.kmeans(x, 5, seed=2), adanns.kmeans(x.astype(np.float32), 5, seed=2)
    )
