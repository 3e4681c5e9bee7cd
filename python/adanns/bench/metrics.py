"""Retrieval quality: recall@k against exact neighbours, and the label metrics of the Matryoshka / AdANNS
papers (top-1 label accuracy, mAP@k)."""

from __future__ import annotations

import numpy as np


def recall_at(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean over queries of |found top-k ∩ true top-k| / k (padding id -1 never matches)."""
    found, true = np.asarray(ids)[:, :k], np.asarray(gt)[:, :k]
    if found.shape[1] < k or true.shape[1] < k:
        raise ValueError(f"recall@{k} needs {k} columns, got {found.shape[1]} found and {true.shape[1]} true")
    hits = ((found[:, :, None] == true[:, None, :]) & (found[:, :, None] >= 0)).any(axis=2)
    return float(hits.sum(axis=1).mean() / k)


def _relevance(ids: np.ndarray, labels_base: np.ndarray, labels_queries: np.ndarray) -> np.ndarray:
    """(nq, k) bool: retrieved row has the query's label (ids index labels_base; -1 is never relevant)."""
    ids = np.asarray(ids)
    if ids.size and ids.max() >= len(labels_base):
        raise ValueError(f"id {int(ids.max())} has no label (labels_base has {len(labels_base)} entries)")
    got = np.asarray(labels_base)[np.maximum(ids, 0)]
    return (got == np.asarray(labels_queries)[:, None]) & (ids >= 0)


def top1_accuracy(ids: np.ndarray, labels_base: np.ndarray, labels_queries: np.ndarray) -> float:
    """Share of queries whose nearest neighbour carries the query's label (1-NN classification)."""
    return float(_relevance(np.asarray(ids)[:, :1], labels_base, labels_queries)[:, 0].mean())


def map_at(ids: np.ndarray, labels_base: np.ndarray, labels_queries: np.ndarray, k: int = 10) -> float:
    """mAP@k with label relevance: AP@k = sum_{i<=k} P@i * rel_i / min(k, R), where R is the number of base
    rows sharing the query's label (so a perfect list scores 1); a query with R = 0 scores 0."""
    ids = np.asarray(ids)[:, :k]
    if ids.shape[1] < k:
        raise ValueError(f"mAP@{k} needs {k} columns, got {ids.shape[1]}")
    rel = _relevance(ids, labels_base, labels_queries).astype(np.float64)
    precision = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    values, counts = np.unique(np.asarray(labels_base), return_counts=True)
    per_label = dict(zip(values.tolist(), counts.tolist()))
    r = np.array([per_label.get(l, 0) for l in np.asarray(labels_queries).tolist()], dtype=np.float64)
    denom = np.minimum(k, r)
    ap = np.divide((precision * rel).sum(axis=1), denom, out=np.zeros(len(ids)), where=denom > 0)
    return float(ap.mean())
