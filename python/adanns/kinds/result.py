"""What every search returns."""

from __future__ import annotations

import numpy as np


class SearchResult:
    """Search output: ``scores`` (nq, k) float32, ``ids`` (nq, k) int64 (-1 padding) and the
    MFLOPs each query spent, ``mflops`` (nq,). Unpacks like faiss: ``scores, ids = result``."""

    __slots__ = ("scores", "ids", "mflops")

    def __init__(self, scores: np.ndarray, ids: np.ndarray, mflops: np.ndarray):
        self.scores, self.ids, self.mflops = scores, ids, mflops

    def __repr__(self) -> str:
        return f"SearchResult(nq={len(self.ids)}, k={self.ids.shape[1] if self.ids.ndim == 2 else 0})"

    def __iter__(self):
        return iter((self.scores, self.ids))
