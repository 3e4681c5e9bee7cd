"""k-means on a Matryoshka prefix."""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validate as v


def kmeans(x, k: int, dim: int | None = None, niter: int = 20, seed: int = 0, threads: int | None = None,
           max_points_per_centroid: int = 256, return_objective: bool = False):
    """Lloyd's k-means on ``x[:, :dim]``; returns the (k, dim) float32 centroids.

    Initialised by k-means++ on a seeded pool of 16·k rows; empty clusters are repaired by splitting
    a large one. Inputs above ``max_points_per_centroid * k`` rows are subsampled (seeded), as
    faiss does; 0 disables that. Deterministic for a seed, whatever ``threads`` is. With
    ``return_objective`` also returns the sum of squared distances of the last assignment.
    """
    x = v.as_vectors(x, "x")
    k = v.positive_int(k, "k")
    dim = x.shape[1] if dim is None else v.positive_int(dim, "dim")
    if dim > x.shape[1]:
        raise ValueError(f"dim must be <= {x.shape[1]} (the data dimension), got {dim}")
    if k > x.shape[0]:
        raise ValueError(f"k-means needs at least k = {k} points, got {x.shape[0]}")
    niter = v.positive_int(niter, "niter", minimum=0)
    seed = v.positive_int(seed, "seed", minimum=0)
    mppc = v.positive_int(max_points_per_centroid, "max_points_per_centroid", minimum=0)
    centroids, objective = _core.kmeans(x, k, dim, niter, seed, v.threads(threads), mppc)
    return (centroids, float(objective)) if return_objective else centroids
