"""faiss IVFPQ + IndexRefineFlat: PQ-coded lists scanned, k * k_factor candidates re-scored exactly.
Cost: nlist * d (centroids) + 256 * d (tables) + M per scanned row + d per re-scored candidate."""

from __future__ import annotations

import numpy as np

from ..family import Built, Context, Variant, train_sample
from ._faiss import ivf_scanned, missing, set_threads

NAME = "faiss IVFPQ+Refine"
PEER = True
PQ_TRAIN_POINTS = 16_384  # = adanns.bench.families.opq.TRAIN_POINTS
__all__ = ["NAME", "PEER", "missing", "variants"]


def variants(ctx: Context, opq: bool = False) -> list:
    if ctx.quick and not opq:
        # --quick keeps one faiss IVF-PQ build, the OPQ one (the peer of adanns IVFOPQ): each faiss PQ
        # training costs minutes on a shared 2-core machine, and --quick must stay under 15 minutes.
        return []
    nlist = max(1, min(1024, ctx.n // 39))
    m = next((m for m in (32, 24, 16, 8, 4, 2, 1) if ctx.dim % m == 0))
    nprobes = [4, 8, 16, 32, 64] if ctx.quick else [2, 4, 8, 16, 32, 64, 128]
    factors = [2, 10, 50] if ctx.quick else [1, 2, 5, 10, 20, 50]
    settings = [{"nprobe": p, "k_factor": f} for p in nprobes if p <= nlist for f in factors]
    name = "faiss OPQ+IVFPQ+Refine" if opq else NAME
    return [Variant(name, {"nlist": nlist, "M": m}, settings, _builder(ctx, nlist, m, opq), peer=True)]


def _builder(ctx: Context, nlist: int, m: int, opq: bool = False):
    """``opq``: an OPQ rotation in front (factory OPQ{m},IVF{nlist},PQ{m}), trained with fewer iterations
    than faiss's defaults as in peers/faiss_opq_pq.py; its d x d rotation is added to the cost."""
    def build(base: np.ndarray) -> Built:
        import faiss

        # "np": no polysemous training, which only re-numbers the centroids (the ADC scan returns the same
        # neighbours) and took over two minutes per build on 2 cores.
        factory = f"OPQ{m},IVF{nlist},PQ{m}np" if opq else f"IVF{nlist},PQ{m}np"
        ivfpq = faiss.index_factory(ctx.dim, factory, faiss.METRIC_INNER_PRODUCT)
        if opq:
            rotation = faiss.downcast_VectorTransform(ivfpq.chain.at(0))
            rotation.niter, rotation.niter_pq_0 = 10, 10
            rotation.max_train_points = PQ_TRAIN_POINTS
        index = faiss.IndexRefineFlat(ivfpq)
        ivf = faiss.extract_index_ivf(ivfpq)
        ivf.cp.niter, ivf.cp.seed = 20, ctx.seed
        # The codebooks learn from as many points as adanns' PQ families use (the coarse step from 40 * nlist).
        faiss.downcast_index(ivf).pq.cp.max_points_per_centroid = PQ_TRAIN_POINTS // 256
        set_threads(1)  # faiss PQ training ran 2.6x slower with 2 OpenMP threads on a shared 2-core machine
        index.train(base[train_sample(len(base), max(40 * nlist, 10_000), ctx.seed)])
        index.add(base)

        def search(q, k, setting, threads):
            set_threads(threads)
            ivf.nprobe, index.k_factor = setting["nprobe"], float(setting["k_factor"])
            (_, ids), rows = ivf_scanned(lambda: index.search(q, k))
            flops = nlist * ctx.dim + 256 * ctx.dim + rows / len(q) * m + k * setting["k_factor"] * ctx.dim \
                + (ctx.dim * ctx.dim if opq else 0)
            return ids, np.full(len(q), flops / 1e6)

        return Built(search, len(base) * (m + 8) + base.nbytes + nlist * ctx.dim * 4
                     + (ctx.dim * ctx.dim * 4 if opq else 0), index)

    return build
