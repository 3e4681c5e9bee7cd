"""adanns OPQIndex (AdANNS-OPQ): every code scanned with per-query tables, then optionally the best
``rerank_k`` re-scored with all coordinates of the stored vectors. 8-bit codes of the first ``pq_dim``
coordinates; one build per (m, pq_dim)."""

from __future__ import annotations

import numpy as np

import adanns

from ..family import Built, Context, Variant, train_sample

NAME = "adanns OPQ"
PEER = False
# OPQ's rotation training dominates the build; a few iterations on a sample reach most of its gain
# (benchmarks/pq_vs_faiss.py trains with the same limits).
OPQ_NITER, TRAIN_POINTS = 10, 16_384


def missing():
    return None


def code_shape(m: int, pq_dim: int, d: int) -> tuple:
    """(m, pq_dim) clipped to d coordinates, m lowered until it divides pq_dim (small test corpora)."""
    pq_dim = min(pq_dim, d)
    return next((mm, pq_dim) for mm in (m, 32, 16, 8, 4, 2, 1) if mm <= pq_dim and pq_dim % mm == 0)


def codes(ctx: Context) -> list:
    """(m, pq_dim) pairs: m bytes per vector for the first pq_dim coordinates."""
    pairs = [(32, 128)] if ctx.quick else [(32, 128), (48, 192), (32, 384)]
    return sorted({code_shape(m, p, ctx.dim) for m, p in pairs})


def settings(ctx: Context) -> list:
    reranks = [50, 100, 200] if ctx.quick else [20, 50, 100, 200, 500, 1000]
    return [{}] + [{"rerank_dim": ctx.dim, "rerank_k": max(r, ctx.k)} for r in reranks]


def variants(ctx: Context) -> list:
    return [Variant(NAME, {"m": m, "pq_dim": p}, settings(ctx), _builder(ctx, m, p)) for m, p in codes(ctx)]


def _builder(ctx: Context, m: int, pq_dim: int):
    def build(base: np.ndarray) -> Built:
        index = adanns.OPQIndex(ctx.dim, m=m, pq_dim=pq_dim, metric="ip", opq=True, nbits=8, seed=ctx.seed)
        index.train(base[train_sample(len(base), TRAIN_POINTS, ctx.seed)], threads=ctx.threads,
                    opq_niter=OPQ_NITER)
        index.add(base, threads=ctx.threads)

        return Built.adanns(index)

    return build
