"""The compute-aware search every index kind shares: ``tune()`` measures a grid of its search settings,
keeps the frontier in the index's user metadata, and ``search(target_recall=... | budget_mflops=...)``
picks a setting from it (the measuring and choosing themselves are in tuning.py).

A kind mixes in :class:`Tunable` and provides its own knobs through hooks: ``default_grid(k, query_dim)``,
``_exact_params(query_dim, k)`` (search kwargs that return the exact top-k, for the ground truth; or
override ``_exact_ids``), ``_user_meta()`` / ``_set_user_meta(raw)``, plus ``dim`` and ``search(q, k=,
threads=, **knobs)``.
"""

from __future__ import annotations

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
    def _exact_ids(self, q: np.ndarray, k: int, threads) -> np.ndarray:
        """Ids of the exact top-k of each query, for the ground truth."""
        return self.search(q, k=k, threads=threads, **self._exact_params(q.shape[1], k)).ids

    def _user_meta(self) -> bytes:
        return self._impl.user_meta()

    def _set_user_meta(self, raw: bytes) -> None:
        self._impl.set_user_meta(raw)
