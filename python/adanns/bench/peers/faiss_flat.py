"""faiss IndexFlatIP: exact search on all coordinates (cost n * d per query)."""

from __future__ import annotations

import numpy as np

from ..family import Built, Context, Variant
from ._faiss import missing, set_threads

NAME = "faiss FlatIP"
PEER = True
__all__ = ["NAME", "PEER", "missing", "variants"]


def variants(ctx: Context) -> list:
    def build(base: np.ndarray) -> Built:
        import faiss

        index = faiss.IndexFlatIP(ctx.dim)
        index.add(base)
        mflops = len(base) * ctx.dim / 1e6

        def search(q, k, setting, threads):
            set_threads(threads)
            _, ids = index.search(q, k)
            return ids, np.full(len(q), mflops)

        return Built(search, base.nbytes, index)

    return [Variant(NAME, {"d": ctx.dim}, [{}], build, peer=True)]
