"""faiss OPQ{M},IVF{nlist},PQ{M} + IndexRefineFlat: the peer of adanns IVFOPQ with re-ranking (same settings
and cost rules as faiss_ivfpq_refine, plus the d x d rotation per query)."""

from __future__ import annotations

from ..family import Context
from . import faiss_ivfpq_refine
from ._faiss import missing

NAME = "faiss OPQ+IVFPQ+Refine"
PEER = True
__all__ = ["NAME", "PEER", "missing", "variants"]


def variants(ctx: Context) -> list:
    return faiss_ivfpq_refine.variants(ctx, opq=True)
