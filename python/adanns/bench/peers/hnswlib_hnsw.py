"""hnswlib HNSW (inner product). hnswlib does not count distance computations, so its points carry no
MFLOPs and appear on the QPS plot only."""

from __future__ import annotations

import numpy as np

from ..family import Built, Context, Variant

NAME = "hnswlib HNSW"
PEER = True


def missing():
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return "hnswlib is not installed (pip install hnswlib)"
    return None


def variants(ctx: Context) -> list:
    ms = [16] if ctx.quick else [16, 32]
    efs = [16, 32, 64, 128, 256] + ([] if ctx.quick else [512])
    return [Variant(NAME, {"M": m, "ef_construction": 100}, [{"ef": e} for e in efs], _builder(ctx, m, 100),
                    peer=True) for m in ms]


def _builder(ctx: Context, m: int, ef_construction: int):
    def build(base: np.ndarray) -> Built:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=ctx.dim)
        index.init_index(max_elements=len(base), ef_construction=ef_construction, M=m, random_seed=ctx.seed)
        index.add_items(base, np.arange(len(base)), num_threads=ctx.threads)

        def search(q, k, setting, threads):
            index.set_ef(max(setting["ef"], k))
            ids, _ = index.knn_query(q, k=k, num_threads=threads)
            return ids.astype(np.int64), None

        return Built(search, index.index_file_size(), index)

    return build
