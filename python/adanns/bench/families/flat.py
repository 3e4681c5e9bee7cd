"""adanns FlatIndex: exhaustive scan on a prefix, optionally re-ranked with all coordinates."""

from __future__ import annotations

import numpy as np

import adanns

from ..family import Built, Context, Variant

NAME = "adanns Flat"
PEER = False


def missing():
    return None


def settings(ctx: Context) -> list:
    d = ctx.dim
    dims = sorted({s for s in (d // 6, d // 3, d // 2, d) if s >= 1}) if ctx.quick else \
        sorted({s for s in (d // 12, d // 8, d // 6, d // 4, d // 3, d // 2, 2 * d // 3, d) if s >= 1})
    reranks = [100] if ctx.quick else [50, 100, 200]
    out = []
    for s in dims:
        out.append({"search_dim": s})
        if s < d:
            out += [{"search_dim": s, "rerank_dim": d, "rerank_k": max(r, ctx.k)} for r in reranks]
    return out


def variants(ctx: Context) -> list:
    def build(base: np.ndarray) -> Built:
        index = adanns.FlatIndex(ctx.dim, metric="ip")
        index.add(base)

        return Built.adanns(index)

    return [Variant(NAME, {"d": ctx.dim}, settings(ctx), build)]
