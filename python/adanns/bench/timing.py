"""Speed of one search setting: batch QPS on 1 thread and on all threads (best of a few repeats, since
background load only ever slows a run down), and single-query latency percentiles on 1 thread."""

from __future__ import annotations

import time

import numpy as np


def batch_qps(search, queries: np.ndarray, k: int, setting: dict, threads: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        search(queries, k, setting, threads)
        best = min(best, time.perf_counter() - t0)
    return len(queries) / best


def latency_ms(search, queries: np.ndarray, k: int, setting: dict, count: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds of ``count`` single-query calls on 1 thread."""
    times = []
    for i in range(min(count, len(queries))):
        q = queries[i:i + 1]
        t0 = time.perf_counter()
        search(q, k, setting, 1)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
