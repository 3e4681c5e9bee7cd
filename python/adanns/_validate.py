"""Input checks at the API boundary: convert once, reject precisely, before anything is touched."""

from __future__ import annotations

import numbers
import os

import numpy as np

from . import _core

METRICS = ("ip", "l2", "cosine")
_CPUS = os.cpu_count() or 1


def as_vectors(x, name: str = "x", dim: int | None = None, max_dim: int | None = None) -> np.ndarray:
    """Return `x` as a C-contiguous float32 (n, d) array, or raise.

    Other float dtypes are converted; anything else is a TypeError. A 1-D input is one row.
    `dim` demands an exact width, `max_dim` allows prefixes up to that width.
    """
    arr = x if type(x) is np.ndarray else np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point values, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {arr.shape}")
    d = arr.shape[1]
    if dim is not None and d != dim:
        raise ValueError(f"{name} must have dimension {dim}, got {d}")
    if max_dim is not None and not 1 <= d <= max_dim:
        raise ValueError(f"{name} must have 1..{max_dim} coordinates (a prefix of the index dimension), got {d}")
    if arr.dtype != np.float32 or not arr.flags.c_contiguous:
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: caught below
            arr = np.ascontiguousarray(arr, dtype=np.float32)
    row = _core.first_nonfinite_row(arr) if arr.size else -1
    if row >= 0:
        raise ValueError(f"{name} contains NaN or infinity (first bad row: row {row})")
    return arr


def as_ids(ids, n: int | None = None, name: str = "ids") -> np.ndarray:
    """Return ids as a C-contiguous int64 1-D array, or raise."""
    arr = np.asarray(ids)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # np.asarray([]) is float64
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries for {n} vectors")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def positive_int(value, name: str, minimum: int = 1) -> int:
    if type(value) is int and value >= minimum:  # the common case, without the ABC check
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def optional_int(value, name: str, minimum: int = 1) -> int | None:
    return None if value is None else positive_int(value, name, minimum)


def threads(value) -> int:
    """Thread count for native calls: None means all cores."""
    if value is None:
        return _CPUS
    return positive_int(value, "threads")


def metric(value) -> str:
    if value not in METRICS:
        raise ValueError(f"unknown metric {value!r}; expected one of {', '.join(METRICS)}")
    return value
