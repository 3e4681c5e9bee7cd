"""faiss IndexBinaryFlat on sign-binarised prefixes (1 bit per coordinate), optionally re-ranked with all
float coordinates. Cost: one 64-bit XOR + popcount counted as one operation, so bits / 64 per row, + d per
re-ranked candidate."""

from __future__ import annotations

import numpy as np

from ..family import Built, Context, Variant
from ._faiss import missing, set_threads

NAME = "faiss BinaryFlat"
PEER = True
__all__ = ["NAME", "PEER", "missing", "variants"]


def _bits(ctx: Context) -> list:
    choices = [ctx.dim] if ctx.quick else [ctx.dim // 3, 2 * ctx.dim // 3, ctx.dim]
    return sorted({b - b % 8 for b in choices if b >= 8})


def variants(ctx: Context) -> list:
    reranks = [0, 100, 500] if ctx.quick else [0, 50, 100, 200, 500, 1000]
    settings = [{"rerank_k": r} for r in reranks]
    return [Variant(NAME, {"bits": b}, settings, _builder(ctx, b), peer=True) for b in _bits(ctx)]


def _codes(x: np.ndarray, bits: int) -> np.ndarray:
    return np.packbits(x[:, :bits] > 0, axis=1)


def _builder(ctx: Context, bits: int):
    def build(base: np.ndarray) -> Built:
        import faiss

        index = faiss.IndexBinaryFlat(bits)
        index.add(_codes(base, bits))

        def search(q, k, setting, threads):
            set_threads(threads)
            r = max(setting["rerank_k"], k) if setting["rerank_k"] else k
            _, ids = index.search(_codes(q, bits), r)
            if setting["rerank_k"]:
                ids = _rerank(base, q, ids, k)
            flops = len(base) * bits / 64 + (r * ctx.dim if setting["rerank_k"] else 0)
            return ids, np.full(len(q), flops / 1e6)

        return Built(search, len(base) * bits // 8, index)

    return build


def _rerank(base: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int, block: int = 64) -> np.ndarray:
    out = np.empty((len(q), k), np.int64)
    for a in range(0, len(q), block):  # blocks bound the (block, r, d) gather
        c = cand[a:a + block]
        scores = np.einsum("qrd,qd->qr", base[np.maximum(c, 0)], q[a:a + block])
        scores[c < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        out[a:a + block] = np.take_along_axis(c, order, axis=1)
    return out
