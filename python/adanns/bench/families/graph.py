"""adanns graph (AdANNS-HNSW): one build per (M, graph_dim, storage); every (ef, re-ranking) is a search
setting on that build, since the nodes keep their full vectors for re-ranking."""

from __future__ import annotations

import numpy as np

import adanns

from ..family import Built, Context, Variant

NAME = "adanns graph"
PEER = False


def missing():
    return None


def grid(ctx: Context) -> dict:
    d = ctx.dim
    if ctx.quick:
        return {"M": [16], "builds": [(d // 2, "sq8"), (d, "float32")], "ef": [16, 32, 64, 128, 256]}
    return {"M": [16, 32], "builds": [(d // 3, "sq8"), (d // 2, "sq8"), (d // 2, "float32"), (d, "float32")],
            "ef": [16, 32, 64, 128, 256, 512]}


def settings(ctx: Context, graph_dim: int) -> list:
    out = []
    for ef in grid(ctx)["ef"]:
        out.append({"ef": ef})  # the whole beam re-ranked with all of the query (the default)
        if graph_dim < ctx.dim:
            out.append({"ef": ef, "rerank_k": max(2 * ctx.k, min(ef, 4 * ctx.k))})  # only the best of the beam
    return out


def variants(ctx: Context) -> list:
    g = grid(ctx)
    return [Variant(NAME, {"M": m, "graph_dim": gd, "storage": storage}, settings(ctx, gd),
                    _builder(ctx, m, max(1, gd), storage))
            for m in g["M"] for gd, storage in g["builds"]]


def _builder(ctx: Context, m: int, graph_dim: int, storage: str):
    def build(base: np.ndarray) -> Built:
        index = adanns.GraphIndex(ctx.dim, graph_dim=graph_dim, M=m, ef_construction=200, metric="ip",
                                  seed=ctx.seed, storage=storage)
        index.add(base, threads=ctx.threads)
        return Built.adanns(index)

    return build
