"""Does compute-aware search keep its promise on queries it was not tuned on? The queries are split in two
(seeded): ``tune`` sees one half; on the other, ``target_recall`` searches are measured against the
cheapest setting of the same grid that actually reaches the target on that half (the oracle)."""

from __future__ import annotations

import numpy as np

from .. import tuning
from . import metrics


def evaluate(index, queries: np.ndarray, gt: np.ndarray, k: int = 10, targets=(0.90, 0.95),
             budgets=(0.25, 0.5, 1.0, 2.0), seed: int = 0, threads: int | None = None) -> dict:
    order = np.random.default_rng(seed).permutation(len(queries))
    half = len(queries) // 2
    t_rows, h_rows = np.sort(order[:half]), np.sort(order[half:])
    q_t, q_h = queries[t_rows], queries[h_rows]
    grid = index.default_grid(k, queries.shape[1])
    frontier = index.tune(q_t, k=k, gt=gt[t_rows, :k], grid=grid, threads=threads)
    # The oracle: every grid setting measured on the held-out half.
    oracle = tuning.measure(lambda q, k, **p: index.search(q, k=k, threads=threads, **p), q_h, gt[h_rows], k, grid)
    out = {"tune_queries": int(half), "heldout_queries": int(len(h_rows)), "grid_size": len(grid),
           "frontier_points": len(frontier.points), "z": frontier.z, "seed": seed, "targets": [], "budgets": []}
    for t in targets:
        res = index.search(q_h, k=k, target_recall=t, threads=threads)
        chosen = frontier.choose(target_recall=t)
        reach = [p for p in oracle if p.recall >= t]
        best = min(reach, key=lambda p: p.mflops) if reach else None
        recall, cost = metrics.recall_at(res.ids, gt[h_rows], k), float(np.mean(res.mflops))
        out["targets"].append({
            "target": t, "chosen": chosen.params, "tuning_recall": chosen.recall, "tuning_lcb": chosen.recall_lcb,
            "heldout_recall": recall, "heldout_mflops": cost,
            "oracle": None if best is None else best.params, "oracle_mflops": None if best is None else best.mflops,
            "cost_ratio": None if best is None else cost / best.mflops,
            "recall_ok": recall >= t - 0.01, "cost_ok": best is not None and cost <= 1.3 * best.mflops})
    for b in budgets:
        res = index.search(q_h, k=k, budget_mflops=b, threads=threads)
        out["budgets"].append({"budget": b, "chosen": frontier.choose(budget_mflops=b).params,
                               "heldout_recall": metrics.recall_at(res.ids, gt[h_rows], k),
                               "heldout_mflops": float(np.mean(res.mflops))})
    return out
