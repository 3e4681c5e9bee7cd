"""Pareto frontiers and layers over benchmark records (each a dict)."""

from __future__ import annotations

import math


def frontier(rows: list, cost: str, value: str, lower_cost_better: bool = True) -> list:
    """Rows no other row beats on (cost, value), ordered by cost; rows lacking either field are ignored."""
    rows = [r for r in rows if r.get(cost) is not None and r.get(value) is not None]
    sign = 1 if lower_cost_better else -1
    out, best = [], -math.inf
    for r in sorted(rows, key=lambda r: (sign * r[cost], -r[value])):
        if r[value] > best:
            out.append(r)
            best = r[value]
    return sorted(out, key=lambda r: r[cost])


def layers(rows: list, cost: str, value: str, depth: int) -> list:
    """Rows on the first ``depth`` frontiers (peel a frontier, take the next): the settings worth timing."""
    left, keep = list(rows), []
    for _ in range(depth):
        front = frontier(left, cost, value)
        if not front:
            break
        ids = {id(r) for r in front}
        keep += front
        left = [r for r in left if id(r) not in ids]
    return keep
