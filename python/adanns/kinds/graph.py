"""AdANNS graph index: an HNSW proximity graph built and walked on the first ``graph_dim`` coordinates
(a Matryoshka prefix), whose candidates are re-ranked with the full stored vectors."""

from __future__ import annotations

import functools

import numpy as np

from .. import _core
from .. import _validate as v
from .base import VectorIndex, native
from .plan import _funnel
from .registry import Kind, Param, register
from .result import SearchResult

DEFAULT_EF = 64
STORAGES = ("float32", "sq8")
# ef values the default tuning grid tries: steps of about 1.4x.
GRAPH_EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


class GraphIndex(VectorIndex):
    """HNSW on the first ``graph_dim`` coordinates (default: all), full vectors kept for re-ranking.

    ``M`` links per node (``2M`` on the bottom level), ``ef_construction`` the beam width of insertion,
    ``seed`` the level draws. ``storage="sq8"`` walks 8-bit codes of the prefix (one byte per coordinate,
    per-coordinate ranges from the first batch added; values outside are clamped) instead of the float
    prefix: a quarter of the memory traffic per node, for searches and for the insertion walks (the
    neighbours are then chosen on exact float prefix distances). ``add(threads=1)`` builds the same graph
    for the same seed and data every time; with more threads nodes are inserted concurrently and the graph
    depends on scheduling.
    ``remove`` leaves tombstones that searches skip; past 10% of the nodes the index consolidates
    (repairs the neighbourhoods of removed nodes and drops them)."""

    def __init__(self, dim: int, graph_dim: int | None = None, M: int = 32, ef_construction: int = 200,
                 metric: str = "ip", seed: int = 0, storage: str = "float32"):
        dim = v.positive_int(dim, "dim")
        graph_dim = dim if graph_dim is None else v.positive_int(graph_dim, "graph_dim")
        if graph_dim > dim:
            raise ValueError(f"graph_dim must be <= dim ({dim}), got {graph_dim}")
        M = v.positive_int(M, "M", minimum=2)
        if M > 256:
            raise ValueError(f"M must be <= 256, got {M}")
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        self._impl = _core.GraphIndex(dim, graph_dim, M, v.positive_int(ef_construction, "ef_construction"),
                                      v.metric(metric), v.positive_int(seed, "seed", minimum=0), storage)

    # Fixed for the index's life: read from the core once, so a one-query search makes a single native
    # call (each native attribute read costs microseconds when the caches are cold).
    dim = functools.cached_property(lambda self: self._impl.dim)
    graph_dim = functools.cached_property(lambda self: self._impl.graph_dim)
    storage = functools.cached_property(lambda self: self._impl.storage)
    M = native("M")
    ef_construction = native("ef_construction")
    seed = native("seed")
    max_level = native("max_level")

    @property
    def tombstones(self) -> int:
        """Removed vectors still held as tombstones (until the next consolidation)."""
        return self._impl.tombstones()

    def add(self, x, ids=None, threads: int | None = None, attributes: dict | None = None) -> None:
        """Inserts vectors (ids: consecutive after the largest seen when None). A batch with an invalid or
        present id raises and changes nothing. ``attributes={"field": [a value per vector], ...}``."""
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = None if ids is None else v.as_ids(ids, x.shape[0])
        t = v.threads(threads)
        self._add_with_attributes(x, ids, attributes, lambda i: self._impl.add(x, i, t, False))

    def upsert(self, x, ids, threads: int | None = None, attributes: dict | None = None) -> None:
        """Inserts vectors, replacing the ids already present (their old vectors become tombstones, their
        attributes are replaced by the new ones)."""
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = v.as_ids(ids, x.shape[0])
        t = v.threads(threads)
        if attributes is None and self._attrs is None:
            self._impl.add(x, ids, t, True)
            return
        store = self._store()
        prepared = store.prepare(attributes, x.shape[0])  # rejects bad attributes before any change
        present = ids[np.isin(ids, self._impl.ids())]
        self._impl.add(x, ids, t, True)
        store.remove(present)
        store.append(ids, prepared)

    def consolidate(self, threads: int | None = None) -> None:
        """Repairs the neighbourhoods of removed vectors and drops them from storage now."""
        self._impl.consolidate(v.threads(threads))

    def neighbours(self, id_: int) -> np.ndarray:
        """Ids linked from ``id_`` on the bottom level of the graph."""
        return self._impl.neighbours(int(id_))

    def search(self, q, k: int = 10, ef: int | None = None, rerank_dim: int | None = None,
               rerank_k: int | None = None, threads: int | None = None, funnel=None,
               target_recall: float | None = None, budget_mflops: float | None = None,
               filter: dict | None = None) -> SearchResult:
        """Walks the graph with beam width ``ef`` (default 64; raised to ``rerank_k`` and ``k``) on the
        first ``graph_dim`` coordinates of each query, then re-ranks.

        Re-ranking by default: a query longer than ``graph_dim`` (or any query, with ``storage="sq8"``)
        re-scores the ``max(ef, k)`` candidates with all its coordinates; ``rerank_dim=0`` keeps the graph's
        prefix scores (with sq8: their 8-bit approximations); ``rerank_dim`` /
        ``rerank_k`` / ``funnel`` choose as for the other kinds. A query shorter than ``graph_dim`` cannot
        walk the graph: it is answered exactly, by a scan of its prefix over every stored vector.
        ``target_recall`` / ``budget_mflops`` pick the settings from the frontier saved by ``tune``.
        ``filter``: only rows matching the expression (filters.py); the walk passes through the other nodes
        but keeps none, so it goes on until its beam holds ``ef`` matching nodes; a filter matching under 2%
        of the rows is answered exactly by scoring its rows (README "Filtered search")."""
        if isinstance(filter, list):  # one per query
            return self._search_per_query_filters(q, k, filter, dict(
                ef=ef, rerank_dim=rerank_dim, rerank_k=rerank_k, threads=threads, funnel=funnel,
                target_recall=target_recall, budget_mflops=budget_mflops))
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(ef=ef, rerank_dim=rerank_dim, rerank_k=rerank_k, funnel=funnel), filter)
        q = v.as_vectors(q, "queries", max_dim=self.dim)
        m = q.shape[1]
        k = v.positive_int(k, "k")
        ef = DEFAULT_EF if ef is None else v.positive_int(ef, "ef")
        rd, rk, stages = self._rerank(m, k, ef, rerank_dim, rerank_k, funnel)
        # An empty index: the core raises RuntimeError("the graph index is empty: ...").
        scores, ids, mflops = self._impl.search(q, k, ef, rd, rk, v.threads(threads), stages, self._allowed(filter))
        return SearchResult(scores, ids, mflops)

    def _rerank(self, m: int, k: int, ef: int, rerank_dim, rerank_k, funnel) -> tuple:
        """(rerank_dim, rerank_k, stages) for the core; see search()."""
        if funnel is not None:
            if rerank_dim is not None:
                raise ValueError("give either rerank_dim or funnel, not both")
            stages = _funnel(funnel, self.dim, m, k)
            rk = stages[0][1] if rerank_k is None else v.positive_int(rerank_k, "rerank_k")
            if rk < k:
                raise ValueError(f"rerank_k ({rk}) must be >= k ({k})")
            return 0, rk, stages
        if rerank_dim is not None and v.positive_int(rerank_dim, "rerank_dim", minimum=0) == 0:
            if rerank_k is not None:
                raise ValueError("rerank_k needs re-ranking: do not combine it with rerank_dim=0")
            return 0, 0, []
        if rerank_dim is None and rerank_k is None and m <= self.graph_dim and self.storage == "float32":
            return 0, 0, []  # the graph's scores already use the whole query
        rd = m if rerank_dim is None else rerank_dim
        if rd > m:
            raise ValueError(f"rerank_dim must be <= the query length {m}, got {rd}")
        rk = max(ef, k) if rerank_k is None else v.positive_int(rerank_k, "rerank_k")
        if rk < k:
            raise ValueError(f"rerank_k ({rk}) must be >= k ({k})")
        return rd, rk, []

    # ---- tune() hooks
    def _exact_ids(self, q: np.ndarray, k: int, threads) -> np.ndarray:
        return self._impl.search_exact(q, k, v.threads(threads))[1]

    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """ef 10..512 in steps of about 1.4x x re-ranking: every candidate of the beam (the default), 2k or
        5k of them, or none (graph scores only) when the queries are longer than graph_dim."""
        d = self.dim if query_dim is None else query_dim
        options = [{}]
        if d > self.graph_dim or self.storage == "sq8":
            options += [{"rerank_k": 2 * k}, {"rerank_k": 5 * k}]
        if d > self.graph_dim:
            options.append({"rerank_dim": 0})
        return [{"ef": ef, **r} for ef in GRAPH_EFS if ef >= k for r in options]

    def __repr__(self) -> str:
        return (f"GraphIndex(dim={self.dim}, graph_dim={self.graph_dim}, M={self.M}, "
                f"ef_construction={self.ef_construction}, metric={self.metric!r}, storage={self.storage!r}, "
                f"ntotal={len(self)})")


register(Kind(
    name="graph", cls=GraphIndex, default_metric="ip", native=_core.GraphIndex, from_native=GraphIndex._wrap,
    params={"M": Param("int", 32, maximum=256), "ef_construction": Param("int", 200, maximum=4096),
            "graph_dim": Param("int", maximum=65536), "seed": Param("int", 0, maximum=(1 << 63) - 1, may_be_zero=True),
            "storage": Param("choice", "float32", choices=STORAGES)},
    knobs=frozenset({"ef", "rerank_dim", "rerank_k"}),
    complete=lambda dim, metric, p: p.setdefault("graph_dim", dim),
    new=lambda dim, metric, p: GraphIndex(dim, graph_dim=p["graph_dim"], M=p["M"], ef_construction=p["ef_construction"],
                                          metric=metric, seed=p["seed"], storage=p["storage"]),
    describe=lambda index: {"M": index.M, "ef_construction": index.ef_construction, "graph_dim": index.graph_dim,
                            "seed": index.seed, "storage": index.storage},
    bench_family="graph",
))
