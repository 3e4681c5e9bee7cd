"""faiss IndexHNSWFlat (inner product): the graph peer of the adanns graph family. faiss does not count
the distances its walk computes, so its points carry no MFLOPs and appear on the QPS plot only."""

from __future__ import annotations

import numpy as np

from ..family import Built, Context, Variant
from ._faiss import missing, set_threads

NAME = "faiss HNSWFlat"
PEER = True
__all__ = ["NAME", "PEER", "missing", "variants"]


def variants(ctx: Context) -> list:
    ms = [16] if ctx.quick else [16, 32]
    efs = [16, 32, 64, 128, 256] + ([] if ctx.quick else [512])
    return [Variant(NAME, {"M": m, "ef_construction": 200}, [{"ef": e} for e in efs], _builder(ctx, m), peer=True)
            for m in ms]


def _builder(ctx: Context, m: int):
    def build(base: np.ndarray) -> Built:
        import faiss

        set_threads(ctx.threads)
        index = faiss.IndexHNSWFlat(ctx.dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.add(base)

        def search(q, k, setting, threads):
            set_threads(threads)
            index.hnsw.efSearch = max(setting["ef"], k)
            _, ids = index.search(q, k)
            return ids, None

        return Built(search, base.nbytes + len(base) * m * 2 * 4, index)

    return build
