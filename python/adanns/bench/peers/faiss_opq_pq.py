"""faiss OPQ + PQ (inner product), exhaustive asymmetric scan of the codes, wrapped in IndexRefineFlat so
k * k_factor candidates are re-scored exactly (k_factor 1: the codes' own top-k, only re-ordered): the
peer of adanns OPQ with re-ranking. Cost: the d x d rotation + 256 * d for the lookup tables + one table
add per sub-quantizer per row (an add counted like a multiply-add) + d per re-scored candidate."""

from __future__ import annotations

import numpy as np

from ..family import Built, Context, Variant, train_sample
from ._faiss import missing, set_threads

NAME = "faiss OPQ+PQ+Refine"
PEER = True
__all__ = ["NAME", "PEER", "missing", "variants"]


def variants(ctx: Context) -> list:
    ms = [m for m in ([32] if ctx.quick else [32, 48]) if ctx.dim % m == 0]
    factors = [1, 5, 20] if ctx.quick else [1, 2, 5, 10, 20, 50, 100]
    return [Variant(NAME, {"M": m, "nbits": 8}, [{"k_factor": f} for f in factors], _builder(ctx, m), peer=True)
            for m in ms]


def _builder(ctx: Context, m: int):
    def build(base: np.ndarray) -> Built:
        import faiss

        # "np": no polysemous training, which only re-numbers the centroids (the ADC scan returns the same
        # neighbours) and took over two minutes per build on 2 cores.
        pq = faiss.index_factory(ctx.dim, f"OPQ{m},PQ{m}np", faiss.METRIC_INNER_PRODUCT)
        opq = faiss.downcast_VectorTransform(pq.chain.at(0))
        # faiss's defaults (50 rotations, 40 initial PQ iterations) took minutes per build on 2 cores
        opq.niter, opq.niter_pq_0 = 10, 10
        index = faiss.IndexRefineFlat(pq)
        set_threads(1)  # faiss PQ training ran 2.6x slower with 2 OpenMP threads on a shared 2-core machine
        index.train(base[train_sample(len(base), 10_000 if ctx.quick else 12_800, ctx.seed)])
        index.add(base)
        scan = ctx.dim * ctx.dim + 256 * ctx.dim + len(base) * m

        def search(q, k, setting, threads):
            set_threads(threads)
            index.k_factor = float(setting["k_factor"])
            _, ids = index.search(q, k)
            return ids, np.full(len(q), (scan + k * setting["k_factor"] * ctx.dim) / 1e6)

        return Built(search, len(base) * m + base.nbytes + ctx.dim * ctx.dim * 4 + 256 * ctx.dim * 4, index)

    return build
