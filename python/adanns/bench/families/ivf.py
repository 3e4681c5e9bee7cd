"""adanns IVF (AdANNS-IVF): one build per (nlist, d_c); every (nprobe, d_s, re-rank) is a search setting
on that build, since the lists store full vectors."""

from __future__ import annotations

import numpy as np

import adanns

from ..family import Built, Context, Variant, train_sample

NAME = "adanns IVF"
PEER = False


def missing():
    return None


def grid(ctx: Context) -> dict:
    d = ctx.dim
    if ctx.quick:
        return {"nlist": [1024], "cluster_dim": sorted({min(64, d), d}), "nprobe": [4, 8, 16, 32, 64],
                "search_dim": sorted({d // 6, d // 3, d // 2, d}), "rerank_k": [100]}
    return {"nlist": [1024, 2048], "cluster_dim": sorted({min(64, d), d}),
            "nprobe": [1, 2, 4, 8, 16, 32, 64, 128],
            "search_dim": sorted({d // 8, d // 6, d // 4, d // 3, d // 2, 2 * d // 3, d}),
            "rerank_k": [50, 100, 200]}


def _nlist(nlist: int, n: int) -> int:
    return max(1, min(nlist, n // 39))  # at least ~39 training rows per list


def settings(ctx: Context, nlist: int) -> list:
    g, d = grid(ctx), ctx.dim
    out = []
    for p in g["nprobe"]:
        if p > nlist:
            continue
        for s in g["search_dim"]:
            out.append({"nprobe": p, "search_dim": s})
            if s < d:
                out += [{"nprobe": p, "search_dim": s, "rerank_dim": d, "rerank_k": max(r, ctx.k)}
                        for r in g["rerank_k"]]
    return out


def variants(ctx: Context) -> list:
    g = grid(ctx)
    out = []
    for nlist in sorted({_nlist(x, ctx.n) for x in g["nlist"]}):
        for dc in g["cluster_dim"]:
            out.append(Variant(NAME, {"nlist": nlist, "d_c": dc}, settings(ctx, nlist), _builder(ctx, nlist, dc)))
    return out


def _builder(ctx: Context, nlist: int, dc: int):
    def build(base: np.ndarray) -> Built:
        index = adanns.IVFIndex(ctx.dim, nlist=nlist, metric="ip", cluster_dim=dc, seed=ctx.seed, niter=20)
        index.train(base[train_sample(len(base), 40 * nlist, ctx.seed)])
        index.add(base)

        return Built.adanns(index)

    return build
