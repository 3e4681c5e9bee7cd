"""Which shard owns a row, and how per-shard top-k lists merge into one.

The rule is a hash of the id (splitmix64, mod the shard count): a write's owner is a function of its id
alone, so an upsert that moves a vector to another IVF list never moves it between shards, and each shard's
own write-ahead log makes its writes durable without a cross-shard step. Every shard holds the same
coarse quantizer (trained once), so the union of the shards' probed lists is exactly the single-node
probe and the merged top-k equals the single-node one. See the README ("Scale-out on Ray") for the
trade-off against sharding by IVF list.
"""

from __future__ import annotations

import numpy as np

RULE = "splitmix64(id) mod shards"


def shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """The owning shard (int64 in [0, shards)) of each id."""
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(shards)).astype(np.int64)


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Merges per-shard (scores, ids), each (nq, k_i) with -1 padding, into the best k per query: higher
    score first for ip/cosine, lower for l2, ties to the smaller id (as one index orders them)."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    ids = np.concatenate([i for _, i in parts], axis=1)
    pad = ids < 0
    # Sort key: padding last, then by score in the metric's order, then by id.
    key = np.where(pad, np.inf, scores if metric == "l2" else -scores.astype(np.float64))
    tie = np.where(pad, np.iinfo(np.int64).max, ids)
    order = np.lexsort((tie, key), axis=1)[:, :k]
    out_scores = np.take_along_axis(scores, order, axis=1)
    out_ids = np.take_along_axis(ids, order, axis=1)
    if out_ids.shape[1] < k:  # fewer slots than k in all shards together (cannot happen with k per shard)
        width = k - out_ids.shape[1]
        fill = np.inf if metric == "l2" else -np.inf
        out_scores = np.hstack([out_scores, np.full((len(out_ids), width), fill, np.float32)])
        out_ids = np.hstack([out_ids, np.full((len(out_ids), width), -1, np.int64)])
    return np.ascontiguousarray(out_scores, dtype=np.float32), np.ascontiguousarray(out_ids, dtype=np.int64)
