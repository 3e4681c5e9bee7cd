"""adanns IVFOPQIndex (AdANNS-IVFOPQ): IVF on the first d_c coordinates, 8-bit OPQ codes of the first
pq_dim coordinates (of the residual) in the lists, the best ``rerank_k`` re-scored with all stored
coordinates. One build per (nlist, d_c, m, pq_dim); nprobe and re-ranking are search settings."""

from __future__ import annotations

import numpy as np

import adanns

from ..family import Built, Context, Variant, train_sample
from .opq import OPQ_NITER, TRAIN_POINTS, code_shape

NAME = "adanns IVFOPQ"
PEER = False


def missing():
    return None


def builds(ctx: Context) -> list:
    """(nlist, d_c, m, pq_dim) tuples."""
    d, nlist = ctx.dim, max(1, min(1024, ctx.n // 39))
    shapes = [(64, 32, 128)] if ctx.quick else [(64, 32, 128), (128, 32, 128), (64, 48, 192)]
    return sorted({(nlist, min(dc, d), *code_shape(m, p, d)) for dc, m, p in shapes})


def settings(ctx: Context, nlist: int) -> list:
    nprobes = [8, 16, 32, 64, 128] if ctx.quick else [2, 4, 8, 16, 32, 64, 128, 256]
    reranks = [100, 200] if ctx.quick else [50, 100, 200, 500]
    out = []
    for p in nprobes:
        if p > nlist:
            continue
        out.append({"nprobe": p})
        out += [{"nprobe": p, "rerank_dim": ctx.dim, "rerank_k": max(r, ctx.k)} for r in reranks]
    return out


def variants(ctx: Context) -> list:
    return [Variant(NAME, {"nlist": nl, "d_c": dc, "m": m, "pq_dim": p}, settings(ctx, nl),
                    _builder(ctx, nl, dc, m, p)) for nl, dc, m, p in builds(ctx)]


def _builder(ctx: Context, nlist: int, dc: int, m: int, pq_dim: int):
    def build(base: np.ndarray) -> Built:
        index = adanns.IVFOPQIndex(ctx.dim, nlist=nlist, cluster_dim=dc, m=m, pq_dim=pq_dim, metric="ip",
                                   opq=True, nbits=8, seed=ctx.seed, niter=20)
        index.train(base[train_sample(len(base), max(40 * nlist, TRAIN_POINTS), ctx.seed)], threads=ctx.threads,
                    opq_niter=OPQ_NITER, max_train_points=TRAIN_POINTS)
        index.add(base, threads=ctx.threads)

        return Built.adanns(index)

    return build
