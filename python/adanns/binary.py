"""BinaryIndex: Hamming search over packed binary codes, with nested prefixes (``search_bits``),
multi-index-hashing radius search and exact lookups, and an optional float re-ranking stage."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np

from . import _core
from . import _validate as v

MAX_BITS = 4096
PAD_DISTANCE = np.iinfo(np.int32).max


@dataclass(frozen=True)
class HammingResult:
    """``distances`` (nq, k) int32 (padding INT32_MAX), ``ids`` (nq, k) int64 (padding -1) and the
    operations each query cost, ``cost`` (nq,): one per 64-bit word of every code compared.
    Unpacks as ``distances, ids = result``."""

    distances: np.ndarray
    ids: np.ndarray
    cost: np.ndarray

    def __iter__(self):
        return iter((self.distances, self.ids))


@dataclass(frozen=True)
class RangeResult:
    """Every stored code within the radius, per query: query i owns ``distances[lims[i]:lims[i+1]]``
    and ``ids[...]`` (ascending distance, ties by id). ``result[i]`` gives that pair; ``cost`` (nq,)
    counts operations (hash probes plus words verified, or words scanned); ``used_hash`` says which."""

    lims: np.ndarray
    distances: np.ndarray
    ids: np.ndarray
    cost: np.ndarray
    used_hash: bool

    def __len__(self) -> int:
        return len(self.lims) - 1

    def __getitem__(self, i: int):
        a, b = self.lims[i], self.lims[i + 1]
        return self.distances[a:b], self.ids[a:b]


@dataclass(frozen=True)
class RerankResult:
    """``scores`` (nq, k) float32 inner products on ``rerank_dim`` coordinates (padding -inf),
    ``ids`` (nq, k) int64 (-1 padding), ``cost`` (nq,): the Hamming scan (ceil(search_bits/64) per
    code) plus ``rerank_dim`` multiply-adds per shortlisted row."""

    scores: np.ndarray
    ids: np.ndarray
    cost: np.ndarray

    def __iter__(self):
        return iter((self.scores, self.ids))


def as_codes(codes, nbytes: int | None = None, max_bytes: int | None = None, name: str = "codes") -> np.ndarray:
    """Packed codes as a C-contiguous uint8 (n, bytes) array, or raise. A 1-D input is one code."""
    arr = codes if type(codes) is np.ndarray else np.asarray(codes)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be packed uint8 codes (np.packbits), got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, nbits / 8), got shape {arr.shape}")
    w = arr.shape[1]
    if nbytes is not None and w != nbytes:
        raise ValueError(f"{name} must have {nbytes} bytes ({8 * nbytes} bits) per code, got {w}")
    if max_bytes is not None and not 1 <= w <= max_bytes:
        raise ValueError(f"{name} must have 1..{max_bytes} bytes per code (a prefix of the index codes), got {w}")
    return np.ascontiguousarray(arr)


def _bits(value, name: str, maximum: int) -> int:
    value = v.positive_int(value, name)
    if value % 8 or value > maximum:
        raise ValueError(f"{name} must be a multiple of 8 in 8..{maximum}, got {value}")
    return value


class BinaryIndex:
    """Exhaustive Hamming search over ``nbits``-bit codes (uint8 rows of ``nbits / 8`` bytes).

    ``dim`` > 0 (or ``vectors=``) also keeps one float vector per code, for ``search_rerank``. Codes,
    vectors and ids given to the constructor are added at once.
    """

    def __init__(self, nbits: int, dim: int = 0, codes=None, vectors=None, ids=None):
        nbits = _bits(nbits, "nbits", MAX_BITS)
        if vectors is not None and not dim:
            vectors = v.as_vectors(vectors, "vectors")
            dim = vectors.shape[1]
        self._impl = _core.BinaryIndex(nbits, v.positive_int(dim, "dim", minimum=0))
        if codes is not None:
            self.add(codes, ids=ids, vectors=vectors)
        elif vectors is not None or ids is not None:
            raise ValueError("vectors and ids need codes to go with them")

    # ------------------------------------------------------------------ properties
    @property
    def nbits(self) -> int:
        return self._impl.nbits

    @property
    def code_bytes(self) -> int:
        return self._impl.nbits // 8

    @property
    def dim(self) -> int:
        """Dimension of the stored float vectors (0: none)."""
        return self._impl.dim

    @property
    def nbytes(self) -> int:
        return self._impl.bytes()

    def __len__(self) -> int:
        return self._impl.size()

    def ids(self) -> np.ndarray:
        return self._impl.ids()

    def codes(self) -> np.ndarray:
        """Stored codes (n, nbits / 8) uint8, in the order of ``ids()``."""
        return self._impl.codes()

    def vectors(self) -> np.ndarray:
        return self._impl.vectors()

    # ------------------------------------------------------------------ writes
    def add(self, codes, ids=None, vectors=None) -> None:
        codes = as_codes(codes, nbytes=self.code_bytes)
        n = codes.shape[0]
        if self.dim:
            if vectors is None:
                raise ValueError(f"this index keeps {self.dim}-d float vectors: add() needs vectors=")
            vectors = v.as_vectors(vectors, "vectors", dim=self.dim)
            if vectors.shape[0] != n:
                raise ValueError(f"vectors has {vectors.shape[0]} rows for {n} codes")
        elif vectors is not None:
            raise ValueError("this index keeps no float vectors (dim=0): build it with dim= or vectors=")
        self._impl.add(codes, vectors, None if ids is None else v.as_ids(ids, n))

    def remove(self, ids) -> int:
        """Removes the given ids; an unknown id raises KeyError and nothing is removed."""
        return self._impl.remove(v.as_ids(ids))

    # ------------------------------------------------------------------ search
    def _queries(self, codes, search_bits):
        q = as_codes(codes, max_bytes=self.code_bytes, name="queries")
        limit = 8 * q.shape[1]
        search_bits = limit if search_bits is None else _bits(search_bits, "search_bits", self.nbits)
        if search_bits > limit:
            raise ValueError(f"search_bits ({search_bits}) exceeds the query codes' {limit} bits")
        return q, search_bits

    def search(self, codes, k: int = 10, search_bits: int | None = None, threads: int | None = None) -> HammingResult:
        """The k nearest codes by Hamming distance on the first ``search_bits`` bits (default: the
        query width; a query narrower than the index is a prefix). Ties go to the smaller id."""
        q, bits = self._queries(codes, search_bits)
        d, i, c = self._impl.search(q, v.positive_int(k, "k"), bits, v.threads(threads))
        return HammingResult(d, i, c)

    def range_search(self, codes, radius: int, search_bits: int | None = None, method: str = "auto",
                     threads: int | None = None) -> RangeResult:
        """Every code within Hamming distance ``radius``. ``method``: "hash" (multi-index hashing,
        exact: candidates are verified; a radius needing more probes than 16x the codes scans instead),
        "scan", or "auto" (hash when few probes are needed; the tables are built on first use and
        dropped by add/remove). ``used_hash`` in the result says which ran."""
        q, bits = self._queries(codes, search_bits)
        if isinstance(radius, bool) or not isinstance(radius, numbers.Integral):
            raise TypeError(f"radius must be an integer, got {type(radius).__name__}")
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        if method not in ("auto", "hash", "scan"):
            raise ValueError(f"method must be 'auto', 'hash' or 'scan', got {method!r}")
        lims, d, i, c, used = self._impl.range_search(q, int(min(radius, bits)), bits, method, v.threads(threads))
        return RangeResult(lims, d, i, c, bool(used))

    def lookup(self, code, search_bits: int | None = None) -> np.ndarray:
        """Ids of the stored codes equal to ``code`` (one code), ascending: one hash probe of the
        smallest matching bucket, O(1) expected."""
        q = as_codes(code, max_bytes=self.code_bytes, name="code")
        if q.shape[0] != 1:
            raise ValueError(f"lookup takes one code, got {q.shape[0]}; use range_search(codes, 0) for many")
        # auto: one hash probe when a substring lies in the prefix (tables built on first use), else a scan
        res = self.range_search(q, 0, search_bits=search_bits, method="auto", threads=1)
        return np.sort(res.ids)

    def build_hash(self, substrings: int | None = None) -> None:
        """Builds the multi-index hash tables now (``substrings`` byte-aligned pieces; default about
        log2(n) bits each). Kept until the next add/remove, saved as a setting with the index."""
        s = 0 if substrings is None else v.positive_int(substrings, "substrings")
        if s > self.code_bytes:
            raise ValueError(f"substrings must be in 1..{self.code_bytes} (whole bytes), got {s}")
        if s and -(-self.code_bytes // s) > 8:
            raise ValueError(f"substrings must be at most 8 bytes: use >= {-(-self.code_bytes // 8)} substrings")
        self._impl.build_hash(s)

    @property
    def hash_substrings(self) -> int:
        """Substrings of the current hash tables (0: not built)."""
        return self._impl.hash_substrings()

    def search_rerank(self, codes, queries, k: int = 10, shortlist: int = 100, rerank_dim: int | None = None,
                      search_bits: int | None = None, threads: int | None = None, allowed=None) -> RerankResult:
        """Two stages: the ``shortlist`` nearest codes by Hamming distance, re-ranked by the inner
        product of ``queries`` (float, (nq, m) with m <= dim) with the stored vectors on the first
        ``rerank_dim`` coordinates (default m). ``allowed``: only these ids may be returned (ascending
        int64 ids, or their packed uint8 bitset as a compiled filter gives it); when they are few (2% of
        the rows, or at most ``shortlist``) they are all re-ranked, exactly, with no code scan."""
        if not self.dim:
            raise RuntimeError("this index keeps no float vectors: build it with vectors= to re-rank")
        q, bits = self._queries(codes, search_bits)
        qv = v.as_vectors(queries, "queries", max_dim=self.dim)
        if qv.shape[0] != q.shape[0]:
            raise ValueError(f"{qv.shape[0]} query vectors for {q.shape[0]} query codes")
        k = v.positive_int(k, "k")
        shortlist = v.positive_int(shortlist, "shortlist")
        if shortlist < k:
            raise ValueError(f"shortlist ({shortlist}) must be >= k ({k})")
        rerank_dim = qv.shape[1] if rerank_dim is None else v.positive_int(rerank_dim, "rerank_dim")
        if rerank_dim > qv.shape[1]:
            raise ValueError(f"rerank_dim must be <= the query length {qv.shape[1]}, got {rerank_dim}")
        s, i, c = self._impl.search_rerank(q, qv, k, shortlist, bits, rerank_dim, v.threads(threads), allowed)
        return RerankResult(s, i, c)

    def estimate_cost(self, search_bits: int | None = None, shortlist: int = 0, rerank_dim: int = 0) -> float:
        """Operations one query costs: ceil(search_bits / 64) per code plus rerank_dim per shortlisted row."""
        bits = self.nbits if search_bits is None else _bits(search_bits, "search_bits", self.nbits)
        return float(len(self) * -(-bits // 64) + min(shortlist, len(self)) * rerank_dim)

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot save to {path!r}: folder {folder!r} does not exist")
        self._impl.save(path)

    @classmethod
    def _wrap(cls, impl):
        obj = cls.__new__(cls)
        obj._impl = impl
        return obj

    def __repr__(self) -> str:
        return f"BinaryIndex(nbits={self.nbits}, dim={self.dim}, ntotal={len(self)})"


def hamming_kernel() -> str:
    """The Hamming implementation the active SIMD level runs (the avx512 level needs VPOPCNTDQ for
    its own kernels and runs the AVX2 ones without it)."""
    return _core.hamming_kernel_name()
