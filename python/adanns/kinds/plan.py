"""Per-query knobs shared by the float-vector kinds: the scan prefix, plain re-ranking and funnels,
checked and resolved once for the core."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validate as v


@dataclass(frozen=True)
class _Plan:
    queries: np.ndarray
    k: int
    search_dim: int
    rerank_dim: int  # 0: no plain re-ranking
    rerank_k: int
    funnel: list  # [(dim, keep), ...]: re-ranking stages (empty: none)


def _funnel(funnel, dim: int, m: int, k: int) -> list:
    """Checks a funnel: a non-empty sequence of (dim, keep) integer pairs, dims within the query
    length, every keep >= k."""
    try:
        stages = [tuple(st) for st in funnel]
    except TypeError:
        raise TypeError("funnel must be a sequence of (dim, keep) pairs") from None
    if not stages:
        raise ValueError("funnel must have at least one (dim, keep) stage")
    out = []
    for i, st in enumerate(stages):
        if len(st) != 2:
            raise ValueError(f"funnel stage {i} must be a (dim, keep) pair, got {st!r}")
        d, keep = v.positive_int(st[0], f"funnel[{i}] dim"), v.positive_int(st[1], f"funnel[{i}] keep")
        if d > dim or d > m:
            raise ValueError(f"funnel[{i}] dim must be <= the index dimension {dim} and the query length {m}, got {d}")
        if keep < k:
            raise ValueError(f"funnel[{i}] keeps {keep} candidates, fewer than k ({k})")
        out.append((d, keep))
    return out


def _rerank_plan(dim: int, m: int, k: int, rerank_dim, rerank_k, funnel) -> tuple:
    """(rerank_dim, rerank_k, stages) for the core. With a funnel the scan keeps ``rerank_k``
    candidates (default: the first stage's keep) and each stage re-scores the survivors with more
    coordinates and keeps fewer; plain re-ranking is the single stage (rerank_dim, k)."""
    if funnel is not None:
        if rerank_dim is not None:
            raise ValueError("give either rerank_dim or funnel, not both")
        stages = _funnel(funnel, dim, m, k)
        rerank_k = stages[0][1] if rerank_k is None else v.positive_int(rerank_k, "rerank_k")
        if rerank_k < k:
            raise ValueError(f"rerank_k ({rerank_k}) must be >= k ({k})")
        return 0, rerank_k, stages
    if rerank_dim is None and rerank_k is None:
        return 0, 0, []
    rerank_dim = m if rerank_dim is None else v.positive_int(rerank_dim, "rerank_dim")
    if rerank_dim > dim:
        raise ValueError(f"rerank_dim must be <= the index dimension {dim}, got {rerank_dim}")
    if rerank_dim > m:
        raise ValueError(f"rerank_dim must be <= the query length {m}, got {rerank_dim}")
    rerank_k = k if rerank_k is None else v.positive_int(rerank_k, "rerank_k")
    if rerank_k < k:
        raise ValueError(f"rerank_k ({rerank_k}) must be >= k ({k})")
    return rerank_dim, rerank_k, []


def _plan(dim: int, q, k, search_dim, rerank_dim, rerank_k, funnel=None) -> _Plan:
    """Resolves the per-query knobs. A query shorter than ``dim`` is a Matryoshka prefix:
    ``search_dim`` defaults to its length, as does ``rerank_dim`` when ``rerank_k`` is given;
    ``rerank_dim`` alone re-scores ``k`` candidates; ``funnel`` gives re-ranking stages instead."""
    q = v.as_vectors(q, "queries", max_dim=dim)
    m = q.shape[1]
    k = v.positive_int(k, "k")
    search_dim = m if search_dim is None else v.positive_int(search_dim, "search_dim")
    if search_dim > dim:
        raise ValueError(f"search_dim must be <= the index dimension {dim}, got {search_dim}")
    if search_dim > m:
        raise ValueError(f"search_dim must be <= the query length {m}, got {search_dim}")
    rd, rk, stages = _rerank_plan(dim, m, k, rerank_dim, rerank_k, funnel)
    return _Plan(q, k, search_dim, rd, rk, stages)
