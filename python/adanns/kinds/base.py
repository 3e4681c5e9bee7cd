"""The index classes: FlatIndex and IVFIndex (AdANNS-IVF), and load()."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from . import _core
from . import _validate as v
from . import tuning
from .attributes import META_KEY as ATTRIBUTES_KEY
from .attributes import AttributeStore
from .filters import compile_filter
from .binary import BinaryIndex
from .tunable import Tunable


class SearchResult:
    """Search output: ``scores`` (nq, k) float32, ``ids`` (nq, k) int64 (-1 padding) and the
    MFLOPs each query spent, ``mflops`` (nq,). Unpacks like faiss: ``scores, ids = result``."""

    __slots__ = ("scores", "ids", "mflops")

    def __init__(self, scores: np.ndarray, ids: np.ndarray, mflops: np.ndarray):
        self.scores, self.ids, self.mflops = scores, ids, mflops

    def __repr__(self) -> str:
        return f"SearchResult(nq={len(self.ids)}, k={self.ids.shape[1] if self.ids.ndim == 2 else 0})"

    def __iter__(self):
        return iter((self.scores, self.ids))


@dataclass(frozen=True)
class _Plan:
    queries: np.ndarray
    k: int
    search_dim: int
    rerank_dim: int  # 0: no plain re-ranking
    rerank_k: int
    funnel: list  # [(dim, keep), ...]: re-ranking stages (empty: none)


def _funnel(funnel, dim: int, m: int, k: int) -> list:
    """Checks a funnel: a non-empty sequence of (dim, keep) integer pairs, dims within the query
    length, every keep >= k."""
    try:
        stages = [tuple(st) for st in funnel]
    except TypeError:
        raise TypeError("funnel must be a sequence of (dim, keep) pairs") from None
    if not stages:
        raise ValueError("funnel must have at least one (dim, keep) stage")
    out = []
    for i, st in enumerate(stages):
        if len(st) != 2:
            raise ValueError(f"funnel stage {i} must be a (dim, keep) pair, got {st!r}")
        d, keep = v.positive_int(st[0], f"funnel[{i}] dim"), v.positive_int(st[1], f"funnel[{i}] keep")
        if d > dim or d > m:
            raise ValueError(f"funnel[{i}] dim must be <= the index dimension {dim} and the query length {m}, got {d}")
        if keep < k:
            raise ValueError(f"funnel[{i}] keeps {keep} candidates, fewer than k ({k})")
        out.append((d, keep))
    return out


def _rerank_plan(dim: int, m: int, k: int, rerank_dim, rerank_k, funnel) -> tuple:
    """(rerank_dim, rerank_k, stages) for the core. With a funnel the scan keeps ``rerank_k``
    candidates (default: the first stage's keep) and each stage re-scores the survivors with more
    coordinates and keeps fewer; plain re-ranking is the single stage (rerank_dim, k)."""
    if funnel is not None:
        if rerank_dim is not None:
            raise ValueError("give either rerank_dim or funnel, not both")
        stages = _funnel(funnel, dim, m, k)
        rerank_k = stages[0][1] if rerank_k is None else v.positive_int(rerank_k, "rerank_k")
        if rerank_k < k:
            raise ValueError(f"rerank_k ({rerank_k}) must be >= k ({k})")
        return 0, rerank_k, stages
    if rerank_dim is None and rerank_k is None:
        return 0, 0, []
    rerank_dim = m if rerank_dim is None else v.positive_int(rerank_dim, "rerank_dim")
    if rerank_dim > dim:
        raise ValueError(f"rerank_dim must be <= the index dimension {dim}, got {rerank_dim}")
    if rerank_dim > m:
        raise ValueError(f"rerank_dim must be <= the query length {m}, got {rerank_dim}")
    rerank_k = k if rerank_k is None else v.positive_int(rerank_k, "rerank_k")
    if rerank_k < k:
        raise ValueError(f"rerank_k ({rerank_k}) must be >= k ({k})")
    return rerank_dim, rerank_k, []


def _plan(dim: int, q, k, search_dim, rerank_dim, rerank_k, funnel=None) -> _Plan:
    """Resolves the per-query knobs. A query shorter than ``dim`` is a Matryoshka prefix:
    ``search_dim`` defaults to its length, as does ``rerank_dim`` when ``rerank_k`` is given;
    ``rerank_dim`` alone re-scores ``k`` candidates; ``funnel`` gives re-ranking stages instead."""
    q = v.as_vectors(q, "queries", max_dim=dim)
    m = q.shape[1]
    k = v.positive_int(k, "k")
    search_dim = m if search_dim is None else v.positive_int(search_dim, "search_dim")
    if search_dim > dim:
        raise ValueError(f"search_dim must be <= the index dimension {dim}, got {search_dim}")
    if search_dim > m:
        raise ValueError(f"search_dim must be <= the query length {m}, got {search_dim}")
    rd, rk, stages = _rerank_plan(dim, m, k, rerank_dim, rerank_k, funnel)
    return _Plan(q, k, search_dim, rd, rk, stages)


def native(name: str) -> property:
    """A read-only attribute of the native index, exposed as is."""
    return property(lambda self: getattr(self._impl, name))


# nprobe values the default tuning grids try: steps of about 1.4x up to 128 lists.
IVF_NPROBES = (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128)


class _Index(Tunable):
    """What every index shares: size, dimension, metric, add/remove, save, compute-aware search
    (tunable.py)."""

    _impl: object

    dim = native("dim")
    metric = native("metric")

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def nbytes(self) -> int:
        """Bytes held by the index (vectors, ids, centroids)."""
        return self._impl.bytes()

    def __len__(self) -> int:
        return self._impl.size()

    def ids(self) -> np.ndarray:
        """Every id the index holds (int64), in storage order."""
        return self._impl.ids()

    def __contains__(self, id_) -> bool:
        return bool(np.isin(id_, self._impl.ids()).all())

    def remove(self, ids) -> int:
        """Removes the given ids; returns how many. An unknown id raises KeyError and nothing is removed."""
        ids = v.as_ids(ids)
        n = self._impl.remove(ids)
        if self._attrs is not None:
            self._attrs.remove(ids)
        return n

    def save(self, path) -> None:
        """Writes the index to ``path`` (atomically: temporary file, fsync, rename), with its attributes."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot save to {path!r}: folder {folder!r} does not exist")
        if self._attrs is None:
            self._impl.save(path)
            return
        # The attributes go into the file's metadata only: in memory the metadata stays small, since
        # tuned searches read it on every call.
        raw = self._user_meta()
        meta = tuning.read_meta(raw)
        meta[ATTRIBUTES_KEY] = self._attrs.as_dict()
        self._set_user_meta(json.dumps(meta, separators=(",", ":")).encode("utf-8"))
        try:
            self._impl.save(path)
        finally:
            self._set_user_meta(raw)

    @classmethod
    def _wrap(cls, impl):
        obj = cls.__new__(cls)
        obj._impl = impl
        try:
            meta = tuning.read_meta(impl.user_meta())
        except ValueError:  # foreign (non-JSON) metadata: it holds no attributes
            meta = {}
        entry = meta.pop(ATTRIBUTES_KEY, None)
        obj._attrs = None if entry is None else AttributeStore.from_dict(entry, impl.ids())
        if entry is not None:  # kept in memory as a store, not as metadata (see save)
            impl.set_user_meta(json.dumps(meta, separators=(",", ":")).encode("utf-8") if meta else b"")
        return obj

    # ---- attributes (payloads) and filters: attributes.py, filters.py
    _attrs = None

    def _store(self) -> AttributeStore:
        if self._attrs is None:
            self._attrs = AttributeStore(self._impl.ids())
        return self._attrs

    def declare(self, field: str, type: str) -> None:
        """Declares an attribute field: "keyword", "int", "float" or "bool" (else inferred on first use)."""
        self._store().declare(field, type)

    def attributes(self, ids) -> list:
        """{field: value} per id (fields without a value left out). KeyError for an unknown id."""
        return self._store().get(v.as_ids(ids))

    def attribute_types(self) -> dict:
        return dict(self._store().types)

    def compile_filter(self, filter) -> np.ndarray:
        """The ascending ids a filter expression matches (filters.py); ValueError when it is malformed."""
        return compile_filter(filter, self._store())

    def _add_with_attributes(self, x: np.ndarray, ids, attributes, core_add) -> np.ndarray | None:
        """Checks attributes and resolves default ids before the core add, records them after it, so
        a rejected batch changes nothing."""
        if attributes is None and self._attrs is None:
            core_add(ids)
            return None
        store = self._store()
        prepared = store.prepare(attributes, x.shape[0])
        if ids is None:
            ids = np.arange(self._impl.next_id(), self._impl.next_id() + x.shape[0], dtype=np.int64)
        core_add(ids)
        store.append(ids, prepared)
        return ids

    def upsert(self, x, ids, attributes=None, **add_kwargs) -> None:
        """Adds the vectors, replacing those (and their attributes) whose ids the index already holds."""
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = v.as_ids(ids, x.shape[0])
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique in an upsert batch")
        if attributes is not None:
            self._store().prepare(attributes, x.shape[0])  # reject bad attributes before removing anything
        present = ids[np.isin(ids, self._impl.ids())]
        if len(present):
            self.remove(present)
        self.add(x, ids, attributes=attributes, **add_kwargs)

    def _allowed(self, filter):
        """What the core's search takes for a filter: the allowed ids, or their packed bitset."""
        return None if filter is None else compile_filter(filter, self._store(), packed_ok=True)


class FlatIndex(_Index):
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


class IVFIndex(_Index):
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
        nprobes = [p for p in IVF_NPROBES if p <= self.nlist]
        return [{"nprobe": n, "search_dim": s, **r} for n in nprobes for s in tuning.prefix_dims(d)
                for r in tuning.rerank_options(k, d, s)]

    def __repr__(self) -> str:
        return (f"IVFIndex(dim={self.dim}, nlist={self.nlist}, metric={self.metric!r}, "
                f"cluster_dim={self.cluster_dim}, ntotal={len(self)}, trained={self.is_trained})")


def load(path, mmap: bool = False, verify: bool = True):
    """Loads an index written by ``save`` (FlatIndex, IVFIndex, GraphIndex or BinaryIndex; a BinaryIndex is
    always read into memory). With ``mmap`` the vectors stay memory-mapped (not read);
    ``verify=False`` then also skips their checksum. Corrupt or truncated files raise ValueError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no index file at {path!r}")
    impl = _core.load(path, bool(mmap), bool(verify))
    if isinstance(impl, _core.BinaryIndex):
        from .binarized import BinarizedIndex  # a code index whose metadata holds a binarizer
        codes = BinaryIndex._wrap(impl)
        obj = BinarizedIndex._from_binary(codes) or codes
    elif isinstance(impl, _core.PQIndex):  # PQ indices read their data (mmap has no effect)
        from .pq import _wrap_loaded
        obj = _wrap_loaded(impl)
    elif isinstance(impl, _core.GraphIndex):
        from .graph import _wrap_loaded as wrap_graph
        obj = wrap_graph(impl)
    else:
        obj = (FlatIndex if isinstance(impl, _core.FlatIndex) else IVFIndex)._wrap(impl)
    if isinstance(obj, Tunable):
        try:
            obj._check_frontiers()  # a damaged frontier fails the load, not a later search
        except ValueError as e:
            raise ValueError(f"corrupt index file {path!r}: {e}") from None
    return obj
