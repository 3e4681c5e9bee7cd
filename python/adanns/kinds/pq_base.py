"""PQ-code indices on Matryoshka prefixes: OPQIndex (AdANNS-OPQ, exhaustive over codes) and
IVFOPQIndex (AdANNS-IVFOPQ: IVF on cluster_dim coordinates, codes in the lists, re-ranking with the
stored full-precision vectors)."""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validate as v
from .index import IVF_NPROBES, SearchResult, _Index, _funnel, _rerank_plan, native
from .opq import MAX_TRAIN_POINTS, train_opq, train_pq


class _PQBase(_Index):
    """Shared by both PQ indices: training (PQ or OPQ on the prefix), add, search."""

    _opq: bool

    pq_dim = native("pq_dim")
    m = native("m")
    nbits = native("nbits")
    store_vectors = native("store_vectors")
    is_trained = native("is_trained")

    @property
    def rotation(self) -> np.ndarray | None:
        """The OPQ rotation R (pq_dim, pq_dim): codes quantize x[:, :pq_dim] @ R; None without OPQ."""
        return self._impl.rotation() if self._impl.has_rotation else None

    @property
    def codebook(self) -> np.ndarray:
        """(m, ksub, pq_dim // m) float32 sub-quantizer centroids."""
        cb = self._impl.codebook()
        return cb.reshape(self.m, -1, cb.shape[1]) if cb.size else cb

    def train(self, x, threads: int | None = None, opq_niter: int = 50, pq_niter: int = 25,
              max_train_points: int = MAX_TRAIN_POINTS) -> None:
        """Trains the coarse quantizer (IVF), then PQ or OPQ on the first pq_dim coordinates (of the
        residuals for IVF with residual=True). Only while the index is empty."""
        x = v.as_vectors(x, "x", dim=self.dim)
        t = v.threads(threads)
        opq_niter = v.positive_int(opq_niter, "opq_niter", minimum=0)
        pq_niter = v.positive_int(pq_niter, "pq_niter", minimum=0)
        max_train_points = v.positive_int(max_train_points, "max_train_points", minimum=0)
        if len(self):
            raise ValueError(f"cannot retrain a PQ index that holds {len(self)} vectors")
        ksub = 1 << self.nbits
        if x.shape[0] < max(ksub, getattr(self, "nlist", 0)):
            raise ValueError(f"training needs at least {max(ksub, getattr(self, 'nlist', 0))} vectors, got {x.shape[0]}")
        seed = self._impl.seed
        centroids = self._impl.coarse_kmeans(x, t) if self._impl.nlist else np.zeros((0, 0), np.float32)
        y = self._impl.training_targets(x, centroids, t)
        if self._opq:
            rot, codebook = train_opq(y, self.m, self.nbits, niter=opq_niter, seed=seed, threads=t,
                                      max_points=max_train_points)
        else:
            rot, codebook = None, train_pq(y, self.m, self.nbits, niter=pq_niter, seed=seed, threads=t,
                                           max_points=max_train_points)
        self._impl.set_trained(centroids, rot, codebook)

    def add(self, x, ids=None, threads: int | None = None) -> None:
        if not self.is_trained:
            raise RuntimeError("PQ index is not trained: call train() before add()")
        x = v.as_vectors(x, "x", dim=self.dim)
        self._impl.add(x, None if ids is None else v.as_ids(ids, x.shape[0]), v.threads(threads))

    def encode(self, x, threads: int | None = None) -> np.ndarray:
        """(n, m) uint8 codes of x, as add() stores them."""
        if not self.is_trained:
            raise RuntimeError("PQ index is not trained: call train() first")
        return self._impl.encode(v.as_vectors(x, "x", dim=self.dim), v.threads(threads))

    def _exact_params(self, query_dim: int, k: int) -> dict:
        """Re-rank every stored vector with all the query's coordinates (every list probed): the exact
        top-k by brute force over the stored vectors. Costs one (len, query_dim) float gather per thread."""
        if not self.store_vectors:
            raise ValueError("this index keeps no vectors (store_vectors=False), so tune() cannot compute the exact "
                             "neighbours itself: pass them as tune(queries, k, gt=...)")
        exact = {"rerank_dim": query_dim, "rerank_k": max(len(self), k)}
        return {**exact, "nprobe": self.nlist} if self._impl.nlist else exact

    def _rerank_grid(self, k: int, query_dim: int, multiples: tuple) -> list:
        """Codes only, or re-rank ``multiples`` x k candidates with all of the query's coordinates (codes
        only without stored vectors). Shorter re-ranking is left out: its saving (rerank_k x the dims
        dropped) is small next to the scan, and on WordNet (d 384, re-ranking with 192) it was never on
        the frontier above recall@10 0.74."""
        if not self.store_vectors:
            return [{}]
        return [{}] + [{"rerank_dim": query_dim, "rerank_k": m * k} for m in multiples]

    def _min_query_dim(self) -> int:
        return max(self.pq_dim, getattr(self, "cluster_dim", 0))

    def _search(self, q, k, nprobe, rerank_dim, rerank_k, funnel, threads) -> SearchResult:
        if not self.is_trained:
            raise RuntimeError("PQ index is not trained: call train() before search()")
        need = max(self.pq_dim, getattr(self, "cluster_dim", 0))
        q = v.as_vectors(q, "queries", max_dim=self.dim)
        if q.shape[1] < need:
            raise ValueError(f"queries must have at least {need} coordinates (pq_dim/cluster_dim), got {q.shape[1]}")
        k = v.positive_int(k, "k")
        rd, rk, stages = _rerank_plan(self.dim, q.shape[1], k, rerank_dim, rerank_k, funnel)
        if (rd or stages) and not self.store_vectors:
            raise ValueError("this index keeps no vectors (store_vectors=False): re-ranking is not available")
        scores, ids, mflops = self._impl.search(q, k, nprobe, rd, rk, v.threads(threads), stages)
        return SearchResult(scores, ids, mflops)


class OPQIndex(_PQBase):
    """AdANNS-OPQ: m bytes per vector quantize the first ``pq_dim`` coordinates (OPQ-rotated when
    ``opq``); search scans every code with per-query lookup tables (ADC), then optionally re-ranks
    with the stored full vectors (``rerank_dim``/``rerank_k`` or ``funnel``)."""

    def __init__(self, dim: int, m: int, pq_dim: int | None = None, metric: str = "ip", opq: bool = True,
                 nbits: int = 8, store_vectors: bool = True, seed: int = 0):
        dim = v.positive_int(dim, "dim")
        pq_dim = dim if pq_dim is None else v.positive_int(pq_dim, "pq_dim")
        m = v.positive_int(m, "m")
        _check_pq(dim, m, pq_dim, metric, nbits)
        self._opq = bool(opq)
        self._impl = _core.PQIndex(dim, 0, 0, pq_dim, m, nbits, metric, False, bool(store_vectors),
                                   v.positive_int(seed, "seed", minimum=0), 0)

    def search(self, q, k: int = 10, rerank_dim: int | None = None, rerank_k: int | None = None,
               funnel=None, threads: int | None = None, target_recall: float | None = None,
               budget_mflops: float | None = None) -> SearchResult:
        """``target_recall`` / ``budget_mflops`` pick ``rerank_dim`` and ``rerank_k`` from the frontier
        saved by ``tune`` (and may not be combined with them)."""
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(rerank_dim=rerank_dim, rerank_k=rerank_k, funnel=funnel))
        return self._search(q, k, 1, rerank_dim, rerank_k, funnel, threads)

    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """Codes only, or re-rank 2k..50k candidates: every setting scans all the codes, which costs the
        same in each, so the grid is short (6 settings)."""
        return self._rerank_grid(k, self.dim if query_dim is None else query_dim, (2, 5, 10, 20, 50))

    def __repr__(self) -> str:
        return (f"OPQIndex(dim={self.dim}, m={self.m}, pq_dim={self.pq_dim}, metric={self.metric!r}, "
                f"nbits={self.nbits}, ntotal={len(self)}, trained={self.is_trained})")


class IVFOPQIndex(_PQBase):
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
        _check_pq(dim, m, pq_dim, metric, nbits)
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
               target_recall: float | None = None, budget_mflops: float | None = None) -> SearchResult:
        """``nprobe`` defaults to 1. ``target_recall`` / ``budget_mflops`` pick ``nprobe``, ``rerank_dim``
        and ``rerank_k`` from the frontier saved by ``tune`` (and may not be combined with them)."""
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(nprobe=nprobe, rerank_dim=rerank_dim, rerank_k=rerank_k, funnel=funnel))
        nprobe = 1 if nprobe is None else v.positive_int(nprobe, "nprobe")
        return self._search(q, k, nprobe, rerank_dim, rerank_k, funnel, threads)

    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """nprobe 1..min(nlist, 128) in ~1.4x steps (as IVFIndex) x (codes only, or re-rank 2k..20k
        candidates): 70 settings."""
        qd = self.dim if query_dim is None else query_dim
        nprobes = [p for p in IVF_NPROBES if p <= self.nlist]
        return [{"nprobe": n, **r} for n in nprobes for r in self._rerank_grid(k, qd, (2, 5, 10, 20))]

    def __repr__(self) -> str:
        return (f"IVFOPQIndex(dim={self.dim}, nlist={self.nlist}, cluster_dim={self.cluster_dim}, m={self.m}, "
                f"pq_dim={self.pq_dim}, metric={self.metric!r}, ntotal={len(self)}, trained={self.is_trained})")


def _check_pq(dim: int, m: int, pq_dim: int, metric: str, nbits) -> None:
    if pq_dim > dim:
        raise ValueError(f"pq_dim must be <= dim ({dim}), got {pq_dim}")
    if pq_dim % m:
        raise ValueError(f"pq_dim ({pq_dim}) must be a multiple of m ({m})")
    if metric not in ("ip", "l2"):
        raise ValueError(f"PQ indices support metrics 'ip' and 'l2', got {metric!r}")
    if nbits not in (4, 8) or isinstance(nbits, bool):
        raise ValueError(f"nbits must be 4 or 8, got {nbits!r}")


def _wrap_loaded(impl):
    cls = IVFOPQIndex if impl.nlist else OPQIndex
    obj = cls._wrap(impl)
    obj._opq = impl.has_rotation
    return obj
