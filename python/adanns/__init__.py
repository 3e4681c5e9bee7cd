"""adanns: adaptive vector search on Matryoshka embeddings."""

from ._core import available_simd_levels, set_simd_level, simd_level
from .clustering import kmeans
from .index import FlatIndex, IVFIndex, SearchResult, load
from .opq import train_opq, train_pq
from .pq import IVFOPQIndex, OPQIndex

__version__ = "0.1.0"

__all__ = [
    "FlatIndex",
    "IVFIndex",
    "IVFOPQIndex",
    "OPQIndex",
    "SearchResult",
    "available_simd_levels",
    "kmeans",
    "load",
    "set_simd_level",
    "train_opq",
    "train_pq",
    "simd_level",
]
