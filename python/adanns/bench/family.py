"""The plug-in contract between the sweep and a family of indexes (adanns kinds and peers alike).

A family module exposes:
  NAME: str                 label in tables and plots ("adanns IVF", "faiss IVFFlat", ...)
  PEER: bool                peers are drawn dashed
  missing() -> str | None   why the family cannot run here (a library not installed), or None
  variants(ctx) -> [Variant] the indexes to build and, for each, the search settings to sweep

A Variant's ``build(base)`` returns a Built whose ``search(queries, k, setting, threads)`` gives
(ids (nq, k) int64, MFLOPs per query (nq,) or None when the system cannot count them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Context:
    dim: int
    n: int
    k: int = 10
    quick: bool = False
    seed: int = 0
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass
class Built:
    search: Callable[[np.ndarray, int, dict, int], tuple]
    nbytes: int
    handle: Any = None  # the index object, for follow-up work (tuning)

    @classmethod
    def adanns(cls, index) -> "Built":
        """An adanns index: a setting is search keyword arguments; the cost is what the search reports."""
        def search(q, k, setting, threads):
            res = index.search(q, k=k, threads=threads, **setting)
            return res.ids, res.mflops

        return cls(search, index.nbytes, index)


@dataclass
class Variant:
    family: str
    params: dict                       # build parameters, shown in the tables
    settings: list                     # search settings (dicts) to sweep on this build
    build: Callable[[np.ndarray], Built]
    peer: bool = False

    @property
    def name(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.params.items())


def train_sample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row numbers of a seeded training sample (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def label(setting: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items()) or "-"


