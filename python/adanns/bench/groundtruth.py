"""Exact top-k by inner product, computed blocked (queries x base tiles, numpy BLAS on every core) and
cached in the output folder, keyed by a hash of the inputs so a changed file is never served stale."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


def fingerprint(a: np.ndarray) -> str:
    h = hashlib.sha256(f"{a.shape}{a.dtype}".encode())
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:24]


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int = 100, query_block: int = 256,
               base_block: int = 65536, progress=None) -> np.ndarray:
    """(nq, k) int64 ids of the largest inner products, best first; ties go to the smaller id. Independent
    of the adanns kernels (numpy matrix products), so it can judge them."""
    n = base.shape[0]
    k = min(k, n)
    out = np.empty((queries.shape[0], k), np.int64)
    for qa in range(0, queries.shape[0], query_block):
        q = queries[qa:qa + query_block].astype(np.float32)
        best_s = np.full((len(q), 0), -np.inf, np.float32)
        best_i = np.empty((len(q), 0), np.int64)
        for ba in range(0, n, base_block):
            s = q @ base[ba:ba + base_block].astype(np.float32).T
            m = min(k, s.shape[1])
            part = np.argpartition(-s, m - 1, axis=1)[:, :m]
            best_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
            best_i = np.concatenate([best_i, part + ba], axis=1)
            # Keep k per query: sort by score descending, then id ascending.
            order = np.lexsort((best_i, -best_s), axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
        out[qa:qa + len(q)] = best_i
        if progress is not None:
            progress(len(q))
    return out


def cached_ground_truth(folder: Path, base: np.ndarray, queries: np.ndarray, k: int = 100,
                        progress=None) -> tuple[np.ndarray, bool]:
    """Ground truth from ``folder/gt_top{k}.npy`` when its inputs match, else computed and saved.
    Returns (gt, was_cached)."""
    key = {"base": fingerprint(base), "queries": fingerprint(queries), "k": k}
    npy, meta = folder / f"gt_top{k}.npy", folder / f"gt_top{k}.json"
    if npy.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()) == key:
                return np.load(npy), True
        except ValueError:
            pass
    gt = exact_topk(base, queries, k, progress=progress)
    np.save(npy, gt)
    meta.write_text(json.dumps(key) + "\n")
    return gt, False
