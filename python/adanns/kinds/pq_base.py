"""What the two PQ-code kinds share (OPQIndex, IVFOPQIndex): training PQ or OPQ on a prefix (of the
residuals with IVF), adding, encoding and searching codes with re-ranking by the stored vectors."""

from __future__ import annotations

import numpy as np

from .. import _validate as v
from ..opq import MAX_TRAIN_POINTS, train_opq, train_pq
from .base import VectorIndex, native
from .plan import _rerank_plan
from .registry import Param
from .result import SearchResult

# The service parameters both PQ kinds take.
PQ_PARAMS = {"m": Param("int", 32, maximum=4096), "pq_dim": Param("int", maximum=65536), "opq": Param("bool", True),
             "nbits": Param("int", 8, maximum=8), "store_vectors": Param("bool", True),
             "seed": Param("int", 0, maximum=(1 << 63) - 1, may_be_zero=True), "train_size": Param("int", maximum=1 << 24)}


class PQIndexBase(VectorIndex):
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

    def add(self, x, ids=None, threads: int | None = None, attributes: dict | None = None) -> None:
        """``attributes={"field": [a value per vector], ...}`` (see attributes.py)."""
        if not self.is_trained:
            raise RuntimeError("PQ index is not trained: call train() before add()")
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = None if ids is None else v.as_ids(ids, x.shape[0])
        t = v.threads(threads)
        self._add_with_attributes(x, ids, attributes, lambda i: self._impl.add(x, i, t))

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

    def _search(self, q, k, nprobe, rerank_dim, rerank_k, funnel, threads, filter=None) -> SearchResult:
        """``filter``: only rows matching the expression (filters.py); a selective one has its rows' codes
        scored directly, a broad one is scanned with the allowed-id bitset, IVF probing past ``nprobe``
        until enough allowed rows were scanned (README "Filtered search")."""
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
        scores, ids, mflops = self._impl.search(q, k, nprobe, rd, rk, v.threads(threads), stages,
                                                self._allowed(filter))
        return SearchResult(scores, ids, mflops)


def check_pq(dim: int, m: int, pq_dim: int, metric: str, nbits) -> None:
    if pq_dim > dim:
        raise ValueError(f"pq_dim must be <= dim ({dim}), got {pq_dim}")
    if pq_dim % m:
        raise ValueError(f"pq_dim ({pq_dim}) must be a multiple of m ({m})")
    if metric not in ("ip", "l2"):
        raise ValueError(f"PQ indices support metrics 'ip' and 'l2', got {metric!r}")
    if nbits not in (4, 8) or isinstance(nbits, bool):
        raise ValueError(f"nbits must be 4 or 8, got {nbits!r}")


def complete_pq(dim: int, metric: str, p: dict) -> None:
    """The service defaults and checks both PQ kinds share."""
    if metric not in ("ip", "l2"):
        raise ValueError(f"PQ kinds support metrics 'ip' and 'l2', got {metric!r}")
    p.setdefault("pq_dim", dim)


def wrap(cls, impl):
    obj = cls._wrap(impl)
    obj._opq = impl.has_rotation
    return obj


def describe_pq(index) -> dict:
    return {"m": index.m, "pq_dim": index.pq_dim, "opq": index.rotation is not None, "nbits": index.nbits,
            "store_vectors": index.store_vectors, "seed": index._impl.seed}
