"""faiss IndexIVFFlat (inner product) on all coordinates: the configuration adanns IVF generalises.
Cost: nlist * d for the centroids + d per scanned row (faiss's own count of rows)."""

from __future__ import annotations

import numpy as np

from ..family import Built, Context, Variant, train_sample
from ._faiss import ivf_scanned, missing, set_threads

NAME = "faiss IVFFlat"
PEER = True
__all__ = ["NAME", "PEER", "missing", "variants"]


def variants(ctx: Context) -> list:
    nlists = [1024] if ctx.quick else [256, 1024, 2048]
    nprobes = [1, 2, 4, 8, 16, 32, 64] + ([] if ctx.quick else [128])
    out = []
    for nlist in sorted({max(1, min(x, ctx.n // 39)) for x in nlists}):
        out.append(Variant(NAME, {"nlist": nlist}, [{"nprobe": p} for p in nprobes if p <= nlist],
                           _builder(ctx, nlist), peer=True))
    return out


def _builder(ctx: Context, nlist: int):
    def build(base: np.ndarray) -> Built:
        import faiss

        quantizer = faiss.IndexFlatIP(ctx.dim)
        index = faiss.IndexIVFFlat(quantizer, ctx.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter, index.cp.seed = 20, ctx.seed
        index.train(base[train_sample(len(base), 40 * nlist, ctx.seed)])
        index.add(base)

        def search(q, k, setting, threads):
            set_threads(threads)
            index.nprobe = setting["nprobe"]
            (_, ids), rows = ivf_scanned(lambda: index.search(q, k))
            return ids, np.full(len(q), (nlist * ctx.dim + rows / len(q) * ctx.dim) / 1e6)

        return Built(search, base.nbytes + nlist * ctx.dim * 4 + len(base) * 8, index)

    return build
