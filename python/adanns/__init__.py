"""adanns: adaptive vector search on Matryoshka embeddings."""

from . import codes
from ._core import available_simd_levels, set_simd_level, simd_level
from .binary import BinaryIndex, HammingResult, RangeResult, RerankResult, hamming_kernel
from .clustering import kmeans
from .codes import LLC, Binarizer, CodeClassifier, binarize
from .kinds import BinarizedIndex, FlatIndex, GraphIndex, IVFIndex, IVFOPQIndex, OPQIndex, SearchResult, load
from .opq import train_opq, train_pq

__version__ = "0.1.0"

__all__ = [
    "BinarizedIndex",
    "BinaryIndex",
    "Binarizer",
    "CodeClassifier",
    "FlatIndex",
    "GraphIndex",
    "HammingResult",
    "IVFIndex",
    "IVFOPQIndex",
    "LLC",
    "OPQIndex",
    "RangeResult",
    "RerankResult",
    "SearchResult",
    "available_simd_levels",
    "binarize",
    "codes",
    "hamming_kernel",
    "kmeans",
    "load",
    "set_simd_level",
    "train_opq",
    "train_pq",
    "simd_level",
]
