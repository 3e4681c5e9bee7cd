"""OPQIndex (AdANNS-OPQ): m-byte PQ codes of a prefix, scanned exhaustively, re-ranked with the stored
vectors. (The codebook training itself is adanns/opq.py.)"""

from __future__ import annotations

from .. import _core
from .. import _validate as v
from .pq_base import PQ_PARAMS, PQIndexBase, check_pq, complete_pq, describe_pq, wrap
from .registry import Kind, register
from .result import SearchResult


class OPQIndex(PQIndexBase):
    """AdANNS-OPQ: m bytes per vector quantize the first ``pq_dim`` coordinates (OPQ-rotated when
    ``opq``); search scans every code with per-query lookup tables (ADC), then optionally re-ranks
    with the stored full vectors (``rerank_dim``/``rerank_k`` or ``funnel``)."""

    def __init__(self, dim: int, m: int, pq_dim: int | None = None, metric: str = "ip", opq: bool = True,
                 nbits: int = 8, store_vectors: bool = True, seed: int = 0):
        dim = v.positive_int(dim, "dim")
        pq_dim = dim if pq_dim is None else v.positive_int(pq_dim, "pq_dim")
        m = v.positive_int(m, "m")
        check_pq(dim, m, pq_dim, metric, nbits)
        self._opq = bool(opq)
        self._impl = _core.PQIndex(dim, 0, 0, pq_dim, m, nbits, metric, False, bool(store_vectors),
                                   v.positive_int(seed, "seed", minimum=0), 0)

    def search(self, q, k: int = 10, rerank_dim: int | None = None, rerank_k: int | None = None,
               funnel=None, threads: int | None = None, target_recall: float | None = None,
               budget_mflops: float | None = None, filter: dict | None = None) -> SearchResult:
        """``target_recall`` / ``budget_mflops`` pick ``rerank_dim`` and ``rerank_k`` from the frontier
        saved by ``tune`` (and may not be combined with them). ``filter``: only rows matching the
        expression (filters.py), or a list of them, one per query."""
        if isinstance(filter, list):  # one per query
            return self._search_per_query_filters(q, k, filter, dict(
                rerank_dim=rerank_dim, rerank_k=rerank_k, funnel=funnel, threads=threads,
                target_recall=target_recall, budget_mflops=budget_mflops))
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(rerank_dim=rerank_dim, rerank_k=rerank_k, funnel=funnel), filter)
        return self._search(q, k, 1, rerank_dim, rerank_k, funnel, threads, filter)

    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """Codes only, or re-rank 2k..50k candidates: every setting scans all the codes, which costs the
        same in each, so the grid is short (6 settings)."""
        return self._rerank_grid(k, self.dim if query_dim is None else query_dim, (2, 5, 10, 20, 50))

    def __repr__(self) -> str:
        return (f"OPQIndex(dim={self.dim}, m={self.m}, pq_dim={self.pq_dim}, metric={self.metric!r}, "
                f"nbits={self.nbits}, ntotal={len(self)}, trained={self.is_trained})")


register(Kind(
    name="opq", cls=OPQIndex, default_metric="ip", native=_core.PQIndex,
    from_native=lambda impl: None if impl.nlist else wrap(OPQIndex, impl),
    params=PQ_PARAMS,
    knobs=frozenset({"rerank_dim", "rerank_k"}),
    complete=complete_pq,
    # ~40 training points per PQ centroid.
    train_size=lambda p: 40 * (1 << p["nbits"]),
    min_train_size=lambda p: 1 << p["nbits"],
    new=lambda dim, metric, p: OPQIndex(dim, m=p["m"], pq_dim=p["pq_dim"], metric=metric, opq=p["opq"],
                                        nbits=p["nbits"], store_vectors=p["store_vectors"], seed=p["seed"]),
    describe=describe_pq,
    bench_family="opq",
))
