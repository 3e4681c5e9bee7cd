"""BinarizedIndex: float vectors in, binary codes inside (binary quantization with re-scoring).

What users of Qdrant's or usearch's binary quantization expect: add and query float vectors; the
index keeps a ``bits``-bit sign code of each vector (of the first ``bits`` coordinates, centred on
the training mean, optionally ITQ-rotated) plus the vector itself; a search takes the ``rerank_k``
nearest codes by Hamming distance and re-scores them by inner product with ``rerank_dim`` stored
coordinates. The binarizer's state is kept in the index file's metadata, so one file holds it all.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from .. import _core
from .. import _validate as v
from ..binary import BinaryIndex
from ..codes import Binarizer, pack
from ..attributes import META_KEY as ATTRIBUTES_KEY
from ..attributes import AttributeStore
from ..tunable import Tunable
from ..tuning import exact_ids, read_meta
from .base import Attributed
from .registry import Kind, Param, register
from .result import SearchResult

META_KEY = "binarizer"


class BinarizedIndex(Attributed, Tunable):
    def __init__(self, dim: int, bits: int | None = None, rotation: str | None = None, center: bool = True,
                 seed: int = 0):
        dim = v.positive_int(dim, "dim")
        bits = dim - dim % 8 if bits is None else v.positive_int(bits, "bits")
        if bits % 8 or bits > dim:
            raise ValueError(f"bits must be a multiple of 8 and <= dim ({dim}), got {bits}")
        self._binarizer = Binarizer(bits, center=center, rotation=rotation, seed=seed)
        self._codes = BinaryIndex(bits, dim=dim)

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return self._codes.dim

    @property
    def bits(self) -> int:
        return self._codes.nbits

    @property
    def metric(self) -> str:
        return "ip"

    @property
    def rotation(self) -> str | None:
        return self._binarizer.rotation

    @property
    def is_trained(self) -> bool:
        return self._binarizer.mean_ is not None

    @property
    def nbytes(self) -> int:
        return self._codes.nbytes

    def __len__(self) -> int:
        return len(self._codes)

    def ids(self) -> np.ndarray:
        return self._codes.ids()

    # ------------------------------------------------------------------ writes
    def train(self, x, threads: int | None = None) -> None:
        """Learns the centring mean (and the ITQ rotation) on x; only while the index is empty."""
        x = v.as_vectors(x, "x", dim=self.dim)
        if len(self):
            raise ValueError(f"cannot retrain a binarized index that holds {len(self)} vectors")
        self._binarizer.fit(x)

    def add(self, x, ids=None, threads: int | None = None, attributes: dict | None = None) -> None:
        """``attributes={"field": [a value per vector], ...}`` (see attributes.py)."""
        if not self.is_trained:
            raise RuntimeError("binarized index is not trained: call train() before add()")
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = None if ids is None else v.as_ids(ids, x.shape[0])
        codes = self._binarizer.encode(x)
        self._add_with_attributes(x, ids, attributes, lambda i: self._codes.add(codes, ids=i, vectors=x))

    def remove(self, ids) -> int:
        ids = v.as_ids(ids)
        n = self._codes.remove(ids)
        if self._attrs is not None:
            self._attrs.remove(ids)
        return n

    def _held_ids(self) -> np.ndarray:
        return self._codes.ids()

    def _next_default_id(self) -> int:
        return self._codes._impl.next_id()

    # ------------------------------------------------------------------ search
    def _encode_queries(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        """Query codes and the bits they cover. Without a rotation bit j depends on coordinate j alone, so
        a Matryoshka prefix query searches the code prefix it determines (whole bytes)."""
        if q.shape[1] >= self.bits:
            return self._binarizer.encode(q), self.bits
        if self.rotation is not None:
            raise ValueError(f"queries must have at least bits = {self.bits} coordinates with an ITQ rotation "
                             f"(each bit mixes them all), got {q.shape[1]}")
        nbits = q.shape[1] - q.shape[1] % 8
        if nbits == 0:
            raise ValueError(f"queries must have at least 8 coordinates (one code byte), got {q.shape[1]}")
        return pack(q[:, :nbits].astype(np.float64) - self._binarizer.mean_[:nbits]), nbits

    def search(self, q, k: int = 10, rerank_k: int | None = None, rerank_dim: int | None = None,
               threads: int | None = None, target_recall: float | None = None,
               budget_mflops: float | None = None, filter: dict | None = None) -> SearchResult:
        """The best k by inner product on ``rerank_dim`` coordinates (default: the query length) among the
        ``rerank_k`` (default max(4k, 40)) nearest codes. MFLOPs: the encoding (bits, + bits² with ITQ),
        one op per 64-bit word per code scanned, ``rerank_dim`` per re-scored row. ``target_recall`` /
        ``budget_mflops`` pick ``rerank_k`` from the frontier saved by ``tune``. ``filter``: only rows
        matching the expression (filters.py), or a list of them, one per query; a filter matching at most
        2% of the rows (or at most ``rerank_k``) has all its rows re-scored, exactly, with no code scan."""
        if not self.is_trained:
            raise RuntimeError("binarized index is not trained: call train() before search()")
        if isinstance(filter, list):  # one per query
            return self._search_per_query_filters(q, k, filter, dict(
                rerank_k=rerank_k, rerank_dim=rerank_dim, threads=threads, target_recall=target_recall,
                budget_mflops=budget_mflops))
        if target_recall is not None or budget_mflops is not None:
            return self._search_tuned(q, k, threads, target_recall, budget_mflops,
                                      dict(rerank_k=rerank_k, rerank_dim=rerank_dim), filter)
        q = v.as_vectors(q, "queries", max_dim=self.dim)
        k = v.positive_int(k, "k")
        rerank_k = max(4 * k, 40) if rerank_k is None else v.positive_int(rerank_k, "rerank_k")
        if rerank_k < k:
            raise ValueError(f"rerank_k ({rerank_k}) must be >= k ({k})")
        codes, nbits = self._encode_queries(q)
        res = self._codes.search_rerank(codes, q, k=k, shortlist=rerank_k, rerank_dim=rerank_dim,
                                        search_bits=nbits, threads=threads, allowed=self._allowed(filter))
        encode = nbits + (nbits * nbits if self.rotation is not None else 0)
        return SearchResult(res.scores, res.ids, (res.cost + encode) * 1e-6)

    # ------------------------------------------------------------------ compute-aware search (tunable.py)
    def default_grid(self, k: int = 10, query_dim: int | None = None) -> list:
        """Re-score 2k..120k of the nearest codes (steps of about 1.5x): the code scan costs the same in
        each, the re-scoring grows with rerank_k."""
        return [{"rerank_k": m * k} for m in (2, 3, 5, 8, 12, 20, 30, 50, 80, 120)]

    def _exact_params(self, query_dim: int, k: int) -> dict:
        return {"rerank_k": max(len(self), k)}  # every stored vector re-scored

    def _exact_ids(self, q: np.ndarray, k: int, threads) -> np.ndarray:
        # The same brute force by matrix products (BLAS), many times faster than re-scoring every row per query.
        return exact_ids(self._codes.vectors(), self._codes.ids(), q, k)

    def _min_query_dim(self) -> int:
        return self.bits if self.rotation is not None else 8

    def _user_meta(self) -> bytes:
        return self._codes._impl.user_meta()

    def _set_user_meta(self, raw: bytes) -> None:
        self._codes._impl.set_user_meta(raw)

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        """One index file: codes, vectors and ids, with the binarizer in its metadata."""
        if not self.is_trained:
            raise RuntimeError("binarized index is not trained: nothing to save")
        b = self._binarizer
        state = {"dim": self.dim, "bits": self.bits, "center": b.center, "rotation": b.rotation, "seed": b.seed,
                 "mean": _encode_array(b.mean_),
                 "rotation_matrix": None if b.rotation_ is None else _encode_array(b.rotation_)}
        meta = read_meta(self._user_meta())  # keeps a tuned frontier next to the binarizer
        meta[META_KEY] = state
        self._codes._impl.set_user_meta(json.dumps(meta).encode())
        if self._attrs is None:
            self._codes.save(path)
            return
        # The attributes go into the file's metadata only (as VectorIndex.save): in memory it stays small.
        with_attributes = {**meta, ATTRIBUTES_KEY: self._attrs.as_dict()}
        self._codes._impl.set_user_meta(json.dumps(with_attributes, separators=(",", ":")).encode())
        try:
            self._codes.save(path)
        finally:
            self._codes._impl.set_user_meta(json.dumps(meta).encode())

    @classmethod
    def _from_binary(cls, codes: BinaryIndex) -> "BinarizedIndex | None":
        """The binarized index a loaded BinaryIndex file holds, or None when it is a plain code index.
        A binarizer entry that is damaged or does not fit the codes raises ValueError."""
        raw = codes._impl.user_meta()
        try:
            state = json.loads(raw)[META_KEY] if raw else None
        except (ValueError, KeyError, TypeError):
            state = None
        if state is None:
            return None
        try:
            binarizer = _binarizer_from_state(state, codes)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"binarized index file: its binarizer is damaged or does not match its codes "
                             f"({type(e).__name__}: {e})") from None
        obj = cls.__new__(cls)
        obj._codes = codes
        obj._binarizer = binarizer
        meta = json.loads(raw)
        entry = meta.pop(ATTRIBUTES_KEY, None)
        obj._attrs = None if entry is None else AttributeStore.from_dict(entry, codes.ids())
        if entry is not None:  # kept in memory as a store, not as metadata (see save)
            codes._impl.set_user_meta(json.dumps(meta).encode())
        return obj

    def __repr__(self) -> str:
        return (f"BinarizedIndex(dim={self.dim}, bits={self.bits}, rotation={self.rotation!r}, "
                f"ntotal={len(self)}, trained={self.is_trained})")


def _encode_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"shape": list(a.shape), "f8": base64.b64encode(a.tobytes()).decode()}


def _decode_array(d: dict, shape: tuple) -> np.ndarray:
    """The array _encode_array wrote, which must have ``shape`` and finite values."""
    if list(d["shape"]) != list(shape):
        raise ValueError(f"array of shape {d['shape']}, expected {list(shape)}")
    buf = base64.b64decode(d["f8"].encode("ascii"), validate=True)
    if len(buf) != 8 * int(np.prod(shape)):
        raise ValueError(f"{len(buf)} bytes for an array of shape {list(shape)}")
    a = np.frombuffer(buf, dtype="<f8").reshape(shape).astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("array holds NaN or infinity")
    return a


def _binarizer_from_state(state: dict, codes: BinaryIndex) -> Binarizer:
    if state["dim"] != codes.dim or state["bits"] != codes.nbits:
        raise ValueError(f"binarizer for dim {state['dim']} and {state['bits']} bits; the codes have dim "
                         f"{codes.dim} and {codes.nbits} bits")
    if codes.nbits > codes.dim:
        raise ValueError(f"{codes.nbits}-bit codes of {codes.dim}-d vectors (bits must be <= dim)")
    if not isinstance(state["center"], bool):
        raise ValueError(f"center must be a bool, got {state['center']!r}")
    b = Binarizer(codes.nbits, center=state["center"], rotation=state["rotation"], seed=state["seed"])
    b.mean_ = _decode_array(state["mean"], (codes.nbits,))
    rot = state["rotation_matrix"]
    if (rot is None) != (b.rotation is None):
        raise ValueError(f"rotation {b.rotation!r} with {'no ' if rot is None else 'a '}rotation matrix")
    if rot is not None:
        b.rotation_ = _decode_array(rot, (codes.nbits, codes.nbits))
    return b


def _complete(dim: int, metric: str, p: dict) -> None:
    if metric != "ip":
        raise ValueError(f"kind 'binary' re-scores by inner product: metric must be 'ip', got {metric!r}")
    p.setdefault("bits", dim - dim % 8)
    p.setdefault("rotation", None)


def _from_native(impl):
    """A code index file whose metadata holds a binarizer is a binarized index; a plain one is not ours."""
    return BinarizedIndex._from_binary(BinaryIndex._wrap(impl))


register(Kind(
    name="binary", cls=BinarizedIndex, default_metric="ip", native=_core.BinaryIndex, from_native=_from_native,
    params={"bits": Param("int", maximum=65536), "rotation": Param("choice", choices=(None, "itq")), "center": Param("bool", True),
            "seed": Param("int", 0, maximum=(1 << 63) - 1, may_be_zero=True), "train_size": Param("int", maximum=1 << 24)},
    knobs=frozenset({"rerank_dim", "rerank_k"}),
    complete=_complete,
    # A binarizer needs a mean (and an ITQ rotation, which wants more points).
    train_size=lambda p: 10_000 if p.get("rotation") else 1_000,
    new=lambda dim, metric, p: BinarizedIndex(dim, bits=p["bits"], rotation=p["rotation"], center=p["center"],
                                              seed=p["seed"]),
    describe=lambda index: {"bits": index.bits, "rotation": index.rotation, "center": index._binarizer.center,
                            "seed": index._binarizer.seed},
    bench_family="binary",
))
