"""Does compute-aware search keep its promise on queries it was not tuned on?

One seeded split of the queries in halves runs the real path: ``tune`` on one half, ``search(...,
target_recall=t)`` on the other, compared with the oracle (the cheapest grid setting that reaches t on that
half). Since one split can be lucky or unlucky, the same choice is then replayed on many random splits from
per-query recalls and costs measured once for every grid setting on all queries."""

from __future__ import annotations

import numpy as np

from .. import tuning
from . import metrics


def per_query(index, queries, gt, k, grid, threads):
    """(settings, nq) recall@k and MFLOPs of every grid setting on every query."""
    recalls, costs = [], []
    for params in grid:
        res = index.search(queries, k=k, threads=threads, **params)
        recalls.append(tuning.per_query_recall(res.ids, gt, k))
        costs.append(res.mflops)
    return np.array(recalls), np.array(costs)


def _choice(grid, recalls, costs, rows, k, target):
    """The setting tune() + search(target_recall=) would pick from these queries (same code path)."""
    points = [tuning.Point(p, float(r[rows].mean()), tuning.lower_bound(r[rows]), float(c[rows].mean()))
              for p, r, c in zip(grid, recalls, costs)]
    f = tuning.Frontier(k, 0, len(rows), tuning.frontier_points(points))
    chosen = f.choose(target_recall=target) if any(p.recall_lcb >= target for p in f.points) else None
    return None if chosen is None else grid.index(chosen.params)


def _oracle(recalls, costs, rows, target):
    mean, cost = recalls[:, rows].mean(axis=1), costs[:, rows].mean(axis=1)
    ok = np.flatnonzero(mean >= target)
    return None if not len(ok) else int(ok[np.argmin(cost[ok])])


def evaluate(index, queries: np.ndarray, gt: np.ndarray, k: int = 10, targets=(0.90, 0.95),
             budgets=(0.5, 1.0, 2.0), seed: int = 0, splits: int = 200, threads: int | None = None) -> dict:
    order = np.random.default_rng(seed).permutation(len(queries))
    half = len(queries) // 2
    t_rows, h_rows = np.sort(order[:half]), np.sort(order[half:])
    q_h = queries[h_rows]
    grid = index.default_grid(k, queries.shape[1])
    frontier = index.tune(queries[t_rows], k=k, gt=gt[t_rows, :k], grid=grid, threads=threads)
    recalls, costs = per_query(index, queries, gt, k, grid, threads)
    out = {"tune_queries": int(half), "heldout_queries": int(len(h_rows)), "grid_size": len(grid),
           "frontier_points": len(frontier.points), "z": frontier.z, "seed": seed, "splits": splits,
           "targets": [], "budgets": [], "resampled": []}
    for t in targets:
        res = index.search(q_h, k=k, target_recall=t, threads=threads)
        chosen = frontier.choose(target_recall=t)
        best = _oracle(recalls, costs, h_rows, t)
        recall, cost = metrics.recall_at(res.ids, gt[h_rows], k), float(np.mean(res.mflops))
        oracle_cost = None if best is None else float(costs[best, h_rows].mean())
        out["targets"].append({
            "target": t, "chosen": chosen.params, "tuning_recall": chosen.recall, "tuning_lcb": chosen.recall_lcb,
            "heldout_recall": recall, "heldout_mflops": cost,
            "oracle": None if best is None else grid[best], "oracle_mflops": oracle_cost,
            "cost_ratio": None if best is None else cost / oracle_cost,
            "recall_ok": recall >= t - 0.01, "cost_ok": best is not None and cost <= 1.3 * oracle_cost})
    rng = np.random.default_rng(seed + 1)
    for t in targets:
        ok_recall, ratios = [], []
        for _ in range(splits):
            perm = rng.permutation(len(queries))
            a, b = perm[:half], perm[half:]
            ch, orc = _choice(grid, recalls, costs, a, k, t), _oracle(recalls, costs, b, t)
            if ch is None or orc is None:
                continue
            ok_recall.append(recalls[ch, b].mean() >= t - 0.01)
            ratios.append(costs[ch, b].mean() / costs[orc, b].mean())
        r = np.array(ratios)
        out["resampled"].append({
            "target": t, "splits_used": len(r), "share_recall_ok": float(np.mean(ok_recall)) if len(r) else None,
            "share_cost_ok": float(np.mean(r <= 1.3)) if len(r) else None,
            "cost_ratio_median": float(np.median(r)) if len(r) else None,
            "cost_ratio_p90": float(np.percentile(r, 90)) if len(r) else None,
            "cost_ratio_max": float(r.max()) if len(r) else None})
    for b in budgets:
        res = index.search(q_h, k=k, budget_mflops=b, threads=threads)
        out["budgets"].append({"budget": b, "chosen": frontier.choose(budget_mflops=b).params,
                               "heldout_recall": metrics.recall_at(res.ids, gt[h_rows], k),
                               "heldout_mflops": float(np.mean(res.mflops))})
    return out
