"""IVFIndex (AdANNS-IVF): lists clustered on a short prefix, scanned and re-ranked with per-query prefixes."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as v
from .. import tuning
from .base import VectorIndex, native
from .plan import _plan
from .registry import Kind, Param, register
from .result import SearchResult


class IVFIndex(VectorIndex):
    """AdANNS-IVF: clusters on the first ``cluster_dim`` coordinates; lists store full vectors, so
    ``search_dim``, ``nprobe``, ``rerank_dim`` and ``rerank_k`` are chosen per search. ``metric`` as
    :class:`FlatIndex` (default "cosine")."""

    def __init__(self, dim: int, nlist: int, metric: str = "cosine", cluster_dim: int | None = None,
                 seed: int = 0, niter: int = 20):
        dim = v.positive_int(dim, "dim")
        cluster_dim = dim if cluster_dim is None else v.positive_int(cluster_dim, "cluster_dim")
        if cluster_dim > dim:
            raise ValueError(f"cluster_dim must be <= dim ({dim}), got {cluster_dim}")
        self._impl = _core.IVFIndex(dim, v.positive_int(nlist, "nlist"), v.metric(metric), cluster_dim,
                                    v.positive_int(seed, "seed", minimum=0),
                                    v.positive_int(niter, "niter", minimum=0))

    nlist = native("nlist")
    cluster_dim = native("cluster_dim")
    seed = native("seed")
    niter = native("niter")
    is_trained = native("is_trained")

    @property
    def centroids(self) -> np.ndarray:
        """(nlist, cluster_dim) float32; empty before training."""
        return self._impl.centroids()

    def list_sizes(self) -> np.ndarray:
        return self._impl.list_sizes()

    def train(self, x, threads: int | None = None) -> None:
        """k-means on ``x[:, :cluster_dim]`` (cosine: on the renormalised prefixes)."""
        x = v.as_vectors(x, "x", dim=self.dim)
        if x.shape[0] < self.nlist:
            raise ValueError(f"training needs at least nlist = {self.nlist} vectors, got {x.shape[0]}")
        self._impl.train(x, v.threads(threads))

    def add(self, x, ids=None, threads: int | None = None, attributes: dict | None = None) -> None:
        """``attributes={"field": [a value per vector], ...}`` (see attributes.py)."""
        if not self.is_trained:
            raise RuntimeError("IVF index is not trained: call train() before add()")
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = None if ids is None else v.as_ids(ids, x.shape[0])
        t = v.threads(threads)
        self._add_with_attributes(x, ids, attributes, lambda i: self._impl.add(x, i, t))

    def search(self, q, k: int = 10, nprobe: int | None = None, search_dim: int | None = None,
               rerank_dim: int | None = None, rerank_k: int | None = None,
               threads: int | None = None, funnel=None, target_recall: float | None = None,
               budget_mflops: float | None = None, filter: dict | None = None) -> SearchResult:
        """``nprobe`` defaults to 1. ``funnel=[(16, 200), (32, 100), ...]``: re-rank the shortlist in
        stages (see README). ``target_recall`` / ``budget_mflops`` pick every knob from the frontier
        saved by ``tune`` (and may not be combined with explicit knobs). ``filter``: only rows matching
        the expression (filters.py); a selective one is scored exactly, a broad one scanned with probes
        added past ``nprobe`` until k matching candidates are found (README "Filtered search")."""
        if isinstance(filter, list):  # one per query
            return self._search_per_query_filters(q, k, filter, dict(
                nprobe=nprobe, search_dim=search_dim, rerank_dim=rerank_dim, rerank_k=rerank_k, threads=threads,
                funnel=funnel, target_recall=target_recall, budget_mflops=budget_mflops))
        if not self.is_trained:
            raise RuntimeError("IVF index is not trained: call train() before search()")
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(nprobe=nprobe, search_dim=search_dim, rerank_dim=rerank_dim,
                                           rerank_k=rerank_k, funnel=funnel), filter)
        p = _plan(self.dim, q, k, search_dim, rerank_dim, rerank_k, funnel)
        nprobe = 1 if nprobe is None else v.positive_int(nprobe, "nprobe")
        scores, ids, mflops = self._impl.search(p.queries, p.k, nprobe, p.search_dim, p.rerank_dim, p.rerank_k,
                                                v.threads(threads), p.funnel, self._allowed(filter))
        return SearchResult(scores, ids, mflops)

    def estimate_mflops(self, k: int = 10, nprobe: int = 1, search_dim: int | None = None,
                        rerank_dim: int | None = None, rerank_k: int | None = None,
                        query_dim: int | None = None, funnel=None) -> float:
        """Predicted MFLOPs per query from the list sizes (see ivf.h)."""
        qd = self.dim if query_dim is None else v.positive_int(query_dim, "query_dim")
        p = _plan(self.dim, np.zeros((1, qd), np.float32), k, search_dim, rerank_dim, rerank_k, funnel)
        return self._impl.estimate_mflops(qd, p.k, v.positive_int(nprobe, "nprobe"), p.search_dim,
                                          p.rerank_dim, p.rerank_k, p.funnel)

    def _exact_params(self, query_dim: int, k: int) -> dict:
        return {"nprobe": self.nlist, "search_dim": query_dim}

    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """nprobe 1..min(nlist, 128) in steps of about 1.4x x prefix lengths d/8..d x re-ranking (none, or
        2k..20k candidates with all coordinates). Steps finer than 2x keep the cost of the recall margin a
        target needs (see tuning.py) small."""
        d = self.dim if query_dim is None else query_dim
        nprobes = [p for p in tuning.IVF_NPROBES if p <= self.nlist]
        return [{"nprobe": n, "search_dim": s, **r} for n in nprobes for s in tuning.prefix_dims(d)
                for r in tuning.rerank_options(k, d, s)]

    def __repr__(self) -> str:
        return (f"IVFIndex(dim={self.dim}, nlist={self.nlist}, metric={self.metric!r}, "
                f"cluster_dim={self.cluster_dim}, ntotal={len(self)}, trained={self.is_trained})")


def _complete(dim: int, metric: str, p: dict) -> None:
    p.setdefault("cluster_dim", dim)
    if p["cluster_dim"] > dim:
        raise ValueError(f"params.cluster_dim must be <= dim ({dim}), got {p['cluster_dim']}")


register(Kind(
    name="ivf", cls=IVFIndex, default_metric="cosine", native=_core.IVFIndex, from_native=IVFIndex._wrap,
    params={"nlist": Param("int", 256, maximum=1 << 18), "cluster_dim": Param("int", maximum=65536),
            "seed": Param("int", 0, maximum=(1 << 63) - 1, may_be_zero=True),
            "niter": Param("int", 20, maximum=1000, may_be_zero=True),
            "train_size": Param("int", maximum=1 << 24)},
    knobs=frozenset({"nprobe", "search_dim", "rerank_dim", "rerank_k"}),
    complete=_complete,
    # Enough points per centroid for k-means to place them well: ~40 per list.
    train_size=lambda p: 40 * p["nlist"],
    min_train_size=lambda p: p["nlist"],
    new=lambda dim, metric, p: IVFIndex(dim, nlist=p["nlist"], metric=metric, cluster_dim=p["cluster_dim"],
                                        seed=p["seed"], niter=p["niter"]),
    describe=lambda index: {"nlist": index.nlist, "cluster_dim": index.cluster_dim, "seed": index.seed,
                            "niter": index.niter},
    bench_family="ivf",
))
