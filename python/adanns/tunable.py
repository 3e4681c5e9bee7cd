"""The compute-aware search every index kind shares: ``tune()`` measures a grid of its search settings,
keeps the frontier in the index's user metadata, and ``search(target_recall=... | budget_mflops=...)``
picks a setting from it (the measuring and choosing themselves are in tuning.py).

A kind mixes in :class:`Tunable` and provides its own knobs through hooks: ``default_grid(k, query_dim)``,
``_exact_params(query_dim, k)`` (search kwargs that return the exact top-k, for the ground truth; or
override ``_exact_ids``), ``_user_meta()`` / ``_set_user_meta(raw)``, plus ``dim`` and ``search(q, k=,
threads=, **knobs)``.
"""

from __future__ import annotations

import inspect

import numpy as np

from . import _validate as v
from . import tuning

_RESERVED = {"k", "threads", "target_recall", "budget_mflops"}


class Tunable:
    def tune(self, queries, k: int = 10, gt=None, grid=None, sample: int | None = None, seed: int = 0,
             threads: int | None = None, progress=None) -> tuning.Frontier:
        """Measures recall@k and MFLOPs of each setting in ``grid`` (dicts of search kwargs; default:
        :meth:`default_grid`) on ``queries`` (or a seeded random ``sample`` of them) against ``gt`` (ids of
        the exact top-k or more; default: an exact search over the vectors the index stores), keeps the
        Pareto frontier and stores it in the index (saved with it). Then ``search(..., target_recall=...)``
        or ``search(..., budget_mflops=...)`` choose among it. Tune again after large changes to the data."""
        q = v.as_vectors(queries, "queries", max_dim=self.dim)
        k = v.positive_int(k, "k")
        if gt is not None:
            gt = np.asarray(gt)
            if gt.dtype.kind not in "iu" or gt.ndim != 2 or gt.shape[0] != q.shape[0] or gt.shape[1] < k:
                raise ValueError(f"gt must be integer ids of shape ({q.shape[0]}, >= {k}), got dtype {gt.dtype} "
                                 f"shape {gt.shape}")
        if sample is not None and v.positive_int(sample, "sample") < q.shape[0]:
            rows = np.sort(np.random.default_rng(v.positive_int(seed, "seed", minimum=0))
                           .choice(q.shape[0], size=sample, replace=False))
            q = q[rows]
            gt = None if gt is None else gt[rows]
        grid = self.default_grid(k, q.shape[1]) if grid is None else list(grid)
        for params in grid:
            if not isinstance(params, dict):
                raise TypeError(f"grid entries must be dicts of search kwargs, got {type(params).__name__}")
            bad = _RESERVED & set(params)
            if bad:
                raise ValueError(f"grid entries may not set {sorted(bad)} (tune() sets k and threads)")
        if gt is None:  # after the cheap checks: the exact search is the expensive part
            gt = self._exact_ids(q, k, threads)
        points = tuning.measure(lambda qq, k, **p: self.search(qq, k=k, threads=threads, **p), q, gt, k, grid,
                                progress=progress)
        frontier = tuning.Frontier(k, q.shape[1], q.shape[0], tuning.frontier_points(points))
        frontiers = {**self.frontiers(), k: frontier}
        self._set_user_meta(tuning.meta_with_frontiers(self._user_meta(), frontiers))
        return frontier

    def frontiers(self) -> dict:
        """{k: Frontier} stored by :meth:`tune` (empty when never tuned)."""
        raw = self._user_meta()
        cached = getattr(self, "_frontier_cache", None)
        if cached is None or cached[0] != raw:
            cached = (raw, tuning.frontiers_from_meta(raw))
            self._frontier_cache = cached
        return dict(cached[1])

    def _check_frontiers(self) -> None:
        """Raises ValueError when the stored frontier (read from a file) is malformed or names a setting
        this kind's ``search`` does not take; a frontier of another format version is left for
        :meth:`frontiers` to report."""
        try:
            frontiers = self.frontiers()
        except tuning.FrontierVersionError:
            return
        knobs = set(inspect.signature(self.search).parameters) - _RESERVED - {"q", "filter"}
        for k, f in frontiers.items():
            if not self._min_query_dim() <= f.query_dim <= self.dim:
                raise ValueError(f"the tuned frontier for k={k} is for {f.query_dim}-dim queries; this index takes "
                                 f"{self._min_query_dim()}..{self.dim}")
            for p in f.points:
                unknown = sorted(set(p.params) - knobs)
                if unknown:
                    raise ValueError(f"the tuned frontier for k={k} holds settings {unknown} that "
                                     f"{type(self).__name__}.search does not take")
                _check_setting(p.params, k, f.query_dim)

    def _search_tuned(self, q, k, threads, target_recall, budget_mflops, explicit: dict, filter=None):
        """``search`` with every knob chosen from the frontier for a target recall or a budget; ``explicit``
        holds the knobs the caller passed too (any that is not None is an error). A ``filter`` is passed on."""
        q = v.as_vectors(q, "queries", max_dim=self.dim)
        k = v.positive_int(k, "k")
        extra = {} if filter is None else {"filter": filter}
        return self.search(q, k=k, threads=threads, **extra,
                           **self._tuned_params(q, k, target_recall, budget_mflops, explicit))

    def _tuned_params(self, q: np.ndarray, k: int, target_recall, budget_mflops, explicit: dict) -> dict:
        """Search kwargs chosen from the stored frontier for a target recall or a budget."""
        tuning.check_target(target_recall, budget_mflops)
        given = sorted(name for name, value in explicit.items() if value is not None)
        if given:
            raise ValueError(f"target_recall / budget_mflops choose the search settings; do not also give {given}")
        frontiers = self.frontiers()
        if not frontiers:
            raise RuntimeError(f"the index is not tuned: call index.tune(queries, k={k}) before searching with "
                               "target_recall or budget_mflops")
        if k not in frontiers:
            raise ValueError(f"the index is tuned for k in {sorted(frontiers)}, not k={k}: call index.tune(queries, "
                             f"k={k})")
        f = frontiers[k]
        if q.shape[1] != f.query_dim:
            raise ValueError(f"the frontier for k={k} was tuned with {f.query_dim}-dim queries, got {q.shape[1]}: call "
                             f"index.tune(queries, k={k}) with {q.shape[1]}-dim queries")
        return dict(f.choose(target_recall, budget_mflops).params)

    # hooks a kind overrides
    def _min_query_dim(self) -> int:
        """The shortest query a search takes."""
        return 1

    def _exact_ids(self, q: np.ndarray, k: int, threads) -> np.ndarray:
        """Ids of the exact top-k of each query, for the ground truth."""
        return self.search(q, k=k, threads=threads, **self._exact_params(q.shape[1], k)).ids

    def _user_meta(self) -> bytes:
        return self._impl.user_meta()

    def _set_user_meta(self, raw: bytes) -> None:
        self._impl.set_user_meta(raw)


def _check_setting(params: dict, k: int, query_dim: int) -> None:
    """The limits every kind's search puts on its knobs, checked on a stored setting (so a damaged one
    fails the load, not a later search)."""
    for name in ("search_dim", "rerank_dim"):
        if (params.get(name) or 0) > query_dim:
            raise ValueError(f"a tuned setting has {name} {params[name]} > its query length {query_dim}")
    if params.get("rerank_k") is not None and params["rerank_k"] < k:
        raise ValueError(f"a tuned setting re-ranks {params['rerank_k']} candidates, fewer than k={k}")
    funnel = params.get("funnel")
    if funnel is not None:
        if params.get("rerank_dim") is not None or not funnel:
            raise ValueError("a tuned setting has an empty funnel, or a funnel and rerank_dim")
        for dim, keep in funnel:
            if dim > query_dim or keep < k:
                raise ValueError(f"a tuned funnel stage ({dim}, {keep}) exceeds the query length {query_dim} or "
                                 f"keeps fewer than k={k}")
