"""IVFOPQIndex (AdANNS-IVFOPQ): IVF on a short prefix, PQ codes (of residuals) in the lists, re-ranking
with the stored vectors."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as v
from .. import tuning
from .base import native
from .pq_base import PQ_PARAMS, PQIndexBase, check_pq, complete_pq, describe_pq, wrap
from .registry import Kind, Param, register
from .result import SearchResult


class IVFOPQIndex(PQIndexBase):
    """AdANNS-IVFOPQ: IVF on the first ``cluster_dim`` coordinates; each list holds m-byte codes of
    the first ``pq_dim`` coordinates (of the residual to the list centroid when ``residual``); the
    ``rerank_k`` best are re-ranked with ``rerank_dim`` coordinates of the stored vectors."""

    def __init__(self, dim: int, nlist: int, cluster_dim: int | None = None, m: int = 32,
                 pq_dim: int | None = None, metric: str = "ip", opq: bool = True, nbits: int = 8,
                 residual: bool = True, store_vectors: bool = True, seed: int = 0, niter: int = 20):
        dim = v.positive_int(dim, "dim")
        cluster_dim = dim if cluster_dim is None else v.positive_int(cluster_dim, "cluster_dim")
        if cluster_dim > dim:
            raise ValueError(f"cluster_dim must be <= dim ({dim}), got {cluster_dim}")
        pq_dim = dim if pq_dim is None else v.positive_int(pq_dim, "pq_dim")
        m = v.positive_int(m, "m")
        check_pq(dim, m, pq_dim, metric, nbits)
        self._opq = bool(opq)
        self._impl = _core.PQIndex(dim, v.positive_int(nlist, "nlist"), cluster_dim, pq_dim, m, nbits, metric,
                                   bool(residual), bool(store_vectors), v.positive_int(seed, "seed", minimum=0),
                                   v.positive_int(niter, "niter", minimum=0))

    nlist = native("nlist")
    cluster_dim = native("cluster_dim")

    @property
    def centroids(self) -> np.ndarray:
        return self._impl.centroids()

    def list_sizes(self) -> np.ndarray:
        return self._impl.list_sizes()

    def search(self, q, k: int = 10, nprobe: int | None = None, rerank_dim: int | None = None,
               rerank_k: int | None = None, funnel=None, threads: int | None = None,
               target_recall: float | None = None, budget_mflops: float | None = None,
               filter: dict | None = None) -> SearchResult:
        """``nprobe`` defaults to 1. ``target_recall`` / ``budget_mflops`` pick ``nprobe``, ``rerank_dim``
        and ``rerank_k`` from the frontier saved by ``tune`` (and may not be combined with them).
        ``filter``: only rows matching the expression (filters.py), or a list of them, one per query."""
        if isinstance(filter, list):  # one per query
            return self._search_per_query_filters(q, k, filter, dict(
                nprobe=nprobe, rerank_dim=rerank_dim, rerank_k=rerank_k, funnel=funnel, threads=threads,
                target_recall=target_recall, budget_mflops=budget_mflops))
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(nprobe=nprobe, rerank_dim=rerank_dim, rerank_k=rerank_k, funnel=funnel),
                                      filter)
        nprobe = 1 if nprobe is None else v.positive_int(nprobe, "nprobe")
        return self._search(q, k, nprobe, rerank_dim, rerank_k, funnel, threads, filter)

    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """nprobe 1..min(nlist, 128) in ~1.4x steps (as IVFIndex) x (codes only, or re-rank 2k..20k
        candidates): 70 settings."""
        qd = self.dim if query_dim is None else query_dim
        nprobes = [p for p in tuning.IVF_NPROBES if p <= self.nlist]
        return [{"nprobe": n, **r} for n in nprobes for r in self._rerank_grid(k, qd, (2, 5, 10, 20))]

    def __repr__(self) -> str:
        return (f"IVFOPQIndex(dim={self.dim}, nlist={self.nlist}, cluster_dim={self.cluster_dim}, m={self.m}, "
                f"pq_dim={self.pq_dim}, metric={self.metric!r}, ntotal={len(self)}, trained={self.is_trained})")


def _complete(dim: int, metric: str, p: dict) -> None:
    complete_pq(dim, metric, p)
    p.setdefault("cluster_dim", dim)
    if p["cluster_dim"] > dim:
        raise ValueError(f"params.cluster_dim must be <= dim ({dim}), got {p['cluster_dim']}")


register(Kind(
    name="ivfopq", cls=IVFOPQIndex, default_metric="ip", native=_core.PQIndex,
    from_native=lambda impl: wrap(IVFOPQIndex, impl) if impl.nlist else None,
    params={"nlist": Param("int", 256, maximum=1 << 18), "cluster_dim": Param("int", maximum=65536),
            **PQ_PARAMS, "residual": Param("bool", True), "niter": Param("int", 20, maximum=1000, may_be_zero=True)},
    knobs=frozenset({"nprobe", "rerank_dim", "rerank_k"}),
    complete=_complete,
    # ~40 training points per IVF list and per PQ centroid.
    train_size=lambda p: 40 * max(p["nlist"], 1 << p["nbits"]),
    min_train_size=lambda p: max(p["nlist"], 1 << p["nbits"]),
    new=lambda dim, metric, p: IVFOPQIndex(dim, nlist=p["nlist"], cluster_dim=p["cluster_dim"], m=p["m"],
                                           pq_dim=p["pq_dim"], metric=metric, opq=p["opq"], nbits=p["nbits"],
                                           residual=p["residual"], store_vectors=p["store_vectors"],
                                           seed=p["seed"], niter=p["niter"]),
    describe=lambda index: {**describe_pq(index), "nlist": index.nlist, "cluster_dim": index.cluster_dim,
                            "residual": bool(index._impl.residual), "niter": index._impl.niter},
    bench_family="ivfopq",
))
