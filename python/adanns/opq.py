"""Training of product quantizers on a Matryoshka prefix: plain PQ, and OPQ (a learned orthonormal
rotation). The rotation is learned here with numpy (``numpy.linalg.svd`` for the Procrustes step, a
pq_dim x pq_dim problem); every k-means and encoding pass runs in the native core.
"""

from __future__ import annotations

import numpy as np

from . import _core

MAX_TRAIN_POINTS = 256 * 256  # as faiss: more points barely change a 256-centroid codebook


def subsample(x: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """At most ``max_points`` rows of x, chosen with a seeded generator (sorted, so reads stay in order)."""
    if max_points <= 0 or x.shape[0] <= max_points:
        return x
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(x[np.sort(rng.choice(x.shape[0], max_points, replace=False))])


def train_pq(y: np.ndarray, m: int, nbits: int = 8, niter: int = 25, seed: int = 0, threads: int = 1,
             max_points: int = MAX_TRAIN_POINTS) -> np.ndarray:
    """Codebook (m * ksub, dsub) trained with k-means on each sub-vector of y (n, pq_dim)."""
    y = subsample(y, max_points, seed)
    return _core.pq_train(y, y.shape[1], m, nbits, niter, seed, threads)


def train_opq(y: np.ndarray, m: int, nbits: int = 8, niter: int = 50, niter_pq: int = 4, niter_pq_0: int = 40,
              seed: int = 0, threads: int = 1, max_points: int = MAX_TRAIN_POINTS):
    """OPQ (Ge et al., non-parametric): alternate PQ training on y @ R and the orthogonal Procrustes
    update R = U Vᵀ of svd(yᵀ ŷ), ŷ the decoded codes. R starts as a seeded random rotation, which
    spreads the variance of the leading (Matryoshka) coordinates over the sub-quantizers; the
    codebook is refined from its last state after every update (hot start). Returns (R, codebook),
    R (pq_dim, pq_dim) float32 orthonormal: codes quantize y @ R."""
    y = subsample(y, max_points, seed)
    d = y.shape[1]
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    rot = (q * np.sign(np.diag(r))).astype(np.float32)
    codebook = _core.pq_train(np.ascontiguousarray(y @ rot), d, m, nbits, niter_pq_0, seed, threads)
    for it in range(niter):
        yr = np.ascontiguousarray(y @ rot)
        codebook, codes = _core.pq_refine(yr, codebook, d, m, nbits, niter_pq if it else 0, threads)
        yhat = _core.pq_decode(codes, codebook, d, m, nbits)
        u, _, vt = np.linalg.svd(y.T @ yhat)
        rot = np.ascontiguousarray((u @ vt).astype(np.float32))
    codebook, _ = _core.pq_refine(np.ascontiguousarray(y @ rot), codebook, d, m, nbits, niter_pq, threads)
    return rot, codebook
