"""FlatIndex: exhaustive search over the stored vectors, on any prefix of them."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as v
from .. import tuning
from .base import VectorIndex
from .plan import _plan
from .registry import Kind, register
from .result import SearchResult


class FlatIndex(VectorIndex):
    """Exhaustive search over the stored vectors, on any prefix of them. ``metric``: "cosine" (default:
    query and row prefixes renormalised, so a prefix query ranks like an embedding of that length), "ip"
    (a prefix query ranks by the un-normalised prefix inner product) or "l2"."""

    def __init__(self, dim: int, metric: str = "cosine"):
        self._impl = _core.FlatIndex(v.positive_int(dim, "dim"), v.metric(metric))

    def add(self, x, ids=None, attributes: dict | None = None) -> None:
        """``attributes={"field": [a value per vector], ...}`` (see attributes.py)."""
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = None if ids is None else v.as_ids(ids, x.shape[0])
        self._add_with_attributes(x, ids, attributes, lambda i: self._impl.add(x, i))

    def search(self, q, k: int = 10, search_dim: int | None = None, rerank_dim: int | None = None,
               rerank_k: int | None = None, threads: int | None = None, funnel=None,
               target_recall: float | None = None, budget_mflops: float | None = None,
               filter: dict | None = None) -> SearchResult:
        """``funnel=[(16, 200), (32, 100), ...]``: re-rank the shortlist in stages (see README).
        ``target_recall`` / ``budget_mflops`` pick the settings from the frontier saved by ``tune``.
        ``filter``: only rows matching the expression (filters.py) are returned, exactly."""
        if isinstance(filter, list):  # one per query
            return self._search_per_query_filters(q, k, filter, dict(
                search_dim=search_dim, rerank_dim=rerank_dim, rerank_k=rerank_k, threads=threads, funnel=funnel,
                target_recall=target_recall, budget_mflops=budget_mflops))
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(search_dim=search_dim, rerank_dim=rerank_dim, rerank_k=rerank_k,
                                           funnel=funnel), filter)
        p = _plan(self.dim, q, k, search_dim, rerank_dim, rerank_k, funnel)
        scores, ids, mflops = self._impl.search(p.queries, p.k, p.search_dim, p.rerank_dim, p.rerank_k,
                                                v.threads(threads), p.funnel, self._allowed(filter))
        return SearchResult(scores, ids, mflops)

    def estimate_mflops(self, k: int = 10, search_dim: int | None = None, rerank_dim: int | None = None,
                        rerank_k: int | None = None, funnel=None) -> float:
        """MFLOPs one query costs: ``N * search_dim`` plus, per re-ranking stage, its dimension per
        candidate it re-scores."""
        p = _plan(self.dim, np.zeros((1, self.dim), np.float32), k, search_dim, rerank_dim, rerank_k, funnel)
        return self._impl.estimate_mflops(p.k, p.search_dim, p.rerank_dim, p.rerank_k, p.funnel)

    def _exact_params(self, query_dim: int, k: int) -> dict:
        return {"search_dim": query_dim}

    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """Every prefix length from d/8 to d, with and without re-ranking by all coordinates."""
        d = self.dim if query_dim is None else query_dim
        return [{"search_dim": s, **r} for s in tuning.prefix_dims(d) for r in tuning.rerank_options(k, d, s)]

    def __repr__(self) -> str:
        return f"FlatIndex(dim={self.dim}, metric={self.metric!r}, ntotal={len(self)})"


register(Kind(
    name="flat", cls=FlatIndex, default_metric="cosine", native=_core.FlatIndex, from_native=FlatIndex._wrap,
    knobs=frozenset({"search_dim", "rerank_dim", "rerank_k"}),
    new=lambda dim, metric, p: FlatIndex(dim, metric=metric),
    describe=lambda index: {},
    bench_family="flat",
))
