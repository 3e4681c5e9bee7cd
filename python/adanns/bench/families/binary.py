"""adanns BinarizedIndex: sign codes of the first ``bits`` coordinates (centred on the training mean),
the ``rerank_k`` nearest by Hamming distance re-scored with all stored coordinates."""

from __future__ import annotations

import numpy as np

import adanns

from ..family import Built, Context, Variant, train_sample

NAME = "adanns binary"
PEER = False


def missing():
    return None


def bit_counts(ctx: Context) -> list:
    d = ctx.dim
    choices = [d] if ctx.quick else [d // 3, 2 * d // 3, d]
    return sorted({b - b % 8 for b in choices if b >= 8})


def settings(ctx: Context) -> list:
    reranks = [50, 100, 200, 500, 1000] if ctx.quick else [20, 50, 100, 200, 500, 1000, 2000]
    return [{"rerank_k": max(r, ctx.k)} for r in reranks]


def variants(ctx: Context) -> list:
    return [Variant(NAME, {"bits": b}, settings(ctx), _builder(ctx, b)) for b in bit_counts(ctx)]


def _builder(ctx: Context, bits: int):
    def build(base: np.ndarray) -> Built:
        index = adanns.BinarizedIndex(ctx.dim, bits=bits, seed=ctx.seed)
        index.train(base[train_sample(len(base), 20_000, ctx.seed)])
        index.add(base)

        return Built.adanns(index)

    return build
