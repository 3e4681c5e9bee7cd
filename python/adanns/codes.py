"""Binary codes from float embeddings, and decoding them into classes.

* ``binarize`` / ``Binarizer``: the unsupervised baseline, the sign of the first ``dims``
  coordinates, optionally mean-centred and ITQ-rotated (Gong & Lazebnik's iterative quantisation).
* ``LLC``: learnt low-dimensional binary codes (Kusupati et al.) from frozen embeddings and labels, in
  numpy: phase 1 learns a projection P and class codes C with softmax cross-entropy on
  ``sign(C) · (P x)`` (straight-through gradients for the sign); phase 2 fixes ``sign(C)`` and fits P
  with per-bit binary cross-entropy, so each bit of an instance code predicts the class code's bit.
* ``CodeClassifier``: exact decoding (a hash lookup; no owner means out of distribution) and
  minimum-Hamming decoding against a class codebook.

Bit j of a code is bit ``7 - j % 8`` of byte ``j // 8`` (``np.packbits`` order), so the first b bits
are the first b / 8 bytes: a nested (Matryoshka) prefix.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _validate as v
from .binary import BinaryIndex, as_codes

__all__ = ["Binarizer", "CodeClassifier", "LLC", "binarize", "pack", "unpack"]


def pack(bits) -> np.ndarray:
    """(n, b) signs or 0/1 values (positive means 1) as packed uint8 codes; b a multiple of 8."""
    b = np.asarray(bits)
    if b.ndim != 2 or b.shape[1] % 8:
        raise ValueError(f"bits must be 2-D with a multiple of 8 columns, got shape {b.shape}")
    return np.packbits(b > 0, axis=1)


def unpack(codes, nbits: int | None = None) -> np.ndarray:
    """Packed uint8 codes as (n, nbits) uint8 0/1."""
    c = as_codes(codes)
    return np.unpackbits(c, axis=1, count=nbits)


def _nbits(value, name="nbits") -> int:
    value = v.positive_int(value, name)
    if value % 8 or value > 4096:
        raise ValueError(f"{name} must be a multiple of 8 in 8..4096, got {value}")
    return value


def _seed(seed) -> int:
    return v.positive_int(seed, "seed", minimum=0)


# ------------------------------------------------------------------------------------ unsupervised
class Binarizer:
    """Sign of the first ``dims`` coordinates, optionally centred on the training mean and rotated by
    ITQ (learned on a sample of at most ``sample`` rows). ``fit`` once, ``encode`` base and queries."""

    def __init__(self, dims: int, center: bool = True, rotation: str | None = None, seed: int = 0,
                 sample: int = 20000, iters: int = 50):
        self.dims = _nbits(dims, "dims")
        if rotation not in (None, "itq"):
            raise ValueError(f"rotation must be None or 'itq', got {rotation!r}")
        self.center, self.rotation, self.seed = bool(center), rotation, _seed(seed)
        self.sample, self.iters = v.positive_int(sample, "sample"), v.positive_int(iters, "iters", minimum=0)
        self.mean_ = None
        self.rotation_ = None

    def fit(self, x) -> "Binarizer":
        x = v.as_vectors(x, "x")
        if x.shape[1] < self.dims:
            raise ValueError(f"dims ({self.dims}) exceeds the {x.shape[1]} coordinates of x")
        z = x[:, :self.dims].astype(np.float64)
        self.mean_ = z.mean(axis=0) if self.center else np.zeros(self.dims)
        self.rotation_ = None
        if self.rotation == "itq":
            rng = np.random.default_rng(self.seed)
            rows = rng.choice(len(z), size=min(self.sample, len(z)), replace=False)
            self.rotation_ = _itq(z[np.sort(rows)] - self.mean_, self.iters, rng)
        return self

    def encode(self, x) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("Binarizer is not fitted: call fit() first")
        x = v.as_vectors(x, "x")
        if x.shape[1] < self.dims:
            raise ValueError(f"x must have at least {self.dims} coordinates, got {x.shape[1]}")
        z = x[:, :self.dims].astype(np.float64) - self.mean_
        if self.rotation_ is not None:
            z = z @ self.rotation_
        return pack(z)


def _itq(z: np.ndarray, iters: int, rng: np.random.Generator) -> np.ndarray:
    """Orthogonal R minimising ||sign(zR) - zR||_F (alternating: codes, then Procrustes)."""
    r, _ = np.linalg.qr(rng.standard_normal((z.shape[1], z.shape[1])))
    for _ in range(iters):
        b = np.where(z @ r >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(z.T @ b)
        r = u @ wt
    return r


def binarize(x, dims: int, center: bool = True, rotation: str | None = None, seed: int = 0,
             fit_on=None) -> np.ndarray:
    """Packed codes of ``x``: sign of the first ``dims`` coordinates, mean-centred and ITQ-rotated as
    asked, with the statistics learned on ``fit_on`` (default ``x``; pass the base set when encoding
    queries, or use ``Binarizer``)."""
    b = Binarizer(dims, center=center, rotation=rotation, seed=seed)
    return b.fit(x if fit_on is None else fit_on).encode(x)


# ------------------------------------------------------------------------------------ LLC
class _Adam:
    def __init__(self, params: dict, lr: float, b1=0.9, b2=0.999, eps=1e-8):
        self.p, self.lr, self.b1, self.b2, self.eps, self.t = params, lr, b1, b2, eps, 0
        self.m = {k: np.zeros_like(a) for k, a in params.items()}
        self.v = {k: np.zeros_like(a) for k, a in params.items()}

    def step(self, grads: dict) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            self.p[k] -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)


def _softmax_grad(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(np.maximum(p[np.arange(n), y], 1e-30)).mean()
    p[np.arange(n), y] -= 1
    return float(loss), p / n


def _sign(a: np.ndarray) -> np.ndarray:
    return np.where(a >= 0, np.float32(1), np.float32(-1))


class LLC:
    """Learnt low-dimensional binary codes for classes and instances.

    ``fit(x, y)`` on frozen embeddings and integer labels; ``encode(x)`` gives packed instance codes
    (``sign(P (x - mean) + bias)``); ``codebook`` is the (L, nbits) ±1 class code matrix, rows in the
    order of ``classes_``. ``nested`` (multiples of 8) adds the cross-entropy of those code prefixes to
    phase 1, so a prefix of the codes is a codebook of its own. Deterministic for a seed.
    """

    def __init__(self, nbits: int, nested=None, epochs: int = 20, code_epochs: int = 20, batch_size: int = 512,
                 lr: float = 3e-3, seed: int = 0):
        self.nbits = _nbits(nbits)
        levels = sorted({_nbits(m, "nested entries") for m in (nested or [])} | {self.nbits})
        if levels[-1] > self.nbits:
            raise ValueError(f"nested prefixes must be <= nbits ({self.nbits}), got {levels[-1]}")
        self.nested = levels
        self.epochs = v.positive_int(epochs, "epochs", minimum=0)
        self.code_epochs = v.positive_int(code_epochs, "code_epochs", minimum=0)
        self.batch_size = v.positive_int(batch_size, "batch_size")
        if not (isinstance(lr, numbers.Real) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.lr, self.seed = float(lr), _seed(seed)
        self.classes_ = None

    # ---------------------------------------------------------------- training
    def fit(self, x, y) -> "LLC":
        x = v.as_vectors(x, "x")
        y = np.asarray(y)
        if y.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, got dtype {y.dtype}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
        classes, yi = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError("LLC needs at least 2 classes")
        rng = np.random.default_rng(self.seed)
        n, d = x.shape
        L, B = len(classes), self.nbits
        # Centred and scaled to unit average variance, so one learning rate fits every embedding.
        self.mean_ = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.scale_ = np.float32(1.0 / max(float(np.sqrt(((x - self.mean_) ** 2).mean())), 1e-12))
        params = {"P": (rng.standard_normal((B, d)) / np.sqrt(d)).astype(np.float32),
                  "b": np.zeros(B, np.float32),
                  "C": (0.1 * rng.standard_normal((L, B))).astype(np.float32)}
        opt = _Adam(params, self.lr)
        self.history_ = {"phase1": [], "phase2": []}

        def batches():
            order = rng.permutation(n)
            for s in range(0, n, self.batch_size):
                idx = order[s:s + self.batch_size]
                yield (x[idx] - self.mean_) * self.scale_, yi[idx]

        # Phase 1: class codes and projection together, softmax over sign(C) . z (per nested prefix).
        for _ in range(self.epochs):
            total = 0.0
            for xb, yb in batches():
                z = xb @ params["P"].T + params["b"]
                S = _sign(params["C"])
                dz, dS = np.zeros_like(z), np.zeros_like(S)
                for m in self.nested:
                    t = 1.0 / np.sqrt(m)  # keeps logits of every prefix on one scale
                    loss, g = _softmax_grad((z[:, :m] @ S[:, :m].T) * t, yb)
                    g *= t / len(self.nested)
                    dz[:, :m] += g @ S[:, :m]
                    dS[:, :m] += g.T @ z[:, :m]
                    total += loss * len(yb) / len(self.nested)
                # Straight-through sign: the gradient passes where |C| <= 1 (hard-tanh surrogate).
                dC = dS * (np.abs(params["C"]) <= 1)
                opt.step({"P": dz.T @ xb, "b": dz.sum(axis=0), "C": dC.astype(np.float32)})
            self.history_["phase1"].append(total / n)

        # Phase 2: fixed class codes as per-bit targets (error-correcting output codes).
        S = _sign(params["C"])
        opt2 = _Adam({"P": params["P"], "b": params["b"]}, self.lr)
        for _ in range(self.code_epochs):
            total = 0.0
            for xb, yb in batches():
                z = xb @ params["P"].T + params["b"]
                t = S[yb] > 0
                p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
                total += float(-np.where(t, np.log(np.maximum(p, 1e-12)), np.log(np.maximum(1 - p, 1e-12))).sum()) / B
                dz = ((p - t) / (len(yb) * B)).astype(np.float32)
                opt2.step({"P": dz.T @ xb, "b": dz.sum(axis=0)})
            self.history_["phase2"].append(total / n)

        self.P_, self.bias_ = params["P"], params["b"]
        self.codebook_ = S.astype(np.int8)
        self.classes_ = classes
        # Share of training items whose code is exactly their class code (what exact decoding gets).
        self.train_exact_accuracy_ = float((self.classifier().predict_exact(self.encode(x)) == y).mean())
        return self

    # ---------------------------------------------------------------- use
    def _check_fitted(self):
        if self.classes_ is None:
            raise RuntimeError("LLC is not fitted: call fit() first")

    def project(self, x) -> np.ndarray:
        """Real-valued instance codes P (x - mean) + bias, (n, nbits) float32."""
        self._check_fitted()
        x = v.as_vectors(x, "x", dim=self.P_.shape[1])
        return ((x - self.mean_) * self.scale_) @ self.P_.T + self.bias_

    def encode(self, x) -> np.ndarray:
        """Packed instance codes (n, nbits / 8) uint8."""
        return pack(self.project(x) >= 0)

    @property
    def codebook(self) -> np.ndarray:
        """(L, nbits) int8 class codes in {-1, +1}, rows in the order of ``classes_``."""
        self._check_fitted()
        return self.codebook_

    def classifier(self, bits: int | None = None) -> "CodeClassifier":
        """A decoder over the codebook (or its first ``bits`` bits)."""
        self._check_fitted()
        cb = self.codebook_ if bits is None else self.codebook_[:, :_nbits(bits, "bits")]
        return CodeClassifier(cb, labels=self.classes_)


# ------------------------------------------------------------------------------------ decoding
class CodeClassifier:
    """Decodes instance codes into classes with a codebook of class codes.

    ``codebook``: (L, nbits) array of ±1 (or 0/1, bool) class codes; ``labels`` (default 0..L-1,
    non-negative) names the rows. Two classes with the same code: the first row owns it
    (``duplicate_codes`` counts the others)."""

    def __init__(self, codebook, labels=None):
        cb = np.asarray(codebook)
        if cb.ndim != 2 or cb.shape[0] < 1:
            raise ValueError(f"codebook must be 2-D (classes, nbits), got shape {cb.shape}")
        if cb.dtype.kind not in "biuf":
            raise TypeError(f"codebook must hold numbers, got dtype {cb.dtype}")
        self.nbits = _nbits(cb.shape[1], "codebook width")
        labels = np.arange(len(cb)) if labels is None else np.asarray(labels)
        if labels.dtype.kind not in "iu" or labels.shape != (len(cb),) or (labels < 0).any():
            raise ValueError(f"labels must be {len(cb)} non-negative integers")
        self.labels = labels.astype(np.int64)
        self.packed = pack(cb)
        self._table = {}
        for row, key in enumerate(self.packed):
            self._table.setdefault(key.tobytes(), row)
        self.duplicate_codes = len(cb) - len(self._table)
        self._index = BinaryIndex(self.nbits, codes=self.packed, ids=np.arange(len(cb)))

    @classmethod
    def from_codes(cls, codes, y, nbits: int | None = None) -> "CodeClassifier":
        """Class codes by per-bit majority of instance codes (for codes with no learnt codebook)."""
        bits = unpack(codes, nbits).astype(np.int64)
        y = np.asarray(y)
        classes, yi = np.unique(y, return_inverse=True)
        ones = np.zeros((len(classes), bits.shape[1]))
        np.add.at(ones, yi, bits)
        counts = np.bincount(yi, minlength=len(classes))[:, None]
        return cls(np.where(2 * ones >= counts, 1, -1), labels=classes)

    def _codes(self, codes, bits):
        c = as_codes(codes, nbytes=self.nbits // 8)
        bits = self.nbits if bits is None else _nbits(bits, "bits")
        if bits > self.nbits:
            raise ValueError(f"bits must be <= {self.nbits}, got {bits}")
        return c, bits

    def predict_exact(self, codes, bits: int | None = None) -> np.ndarray:
        """The class whose code equals each code (hash lookup), -1 when none: out of distribution.
        ``bits``: decode on the first ``bits`` bits against the codebook's prefix."""
        c, bits = self._codes(codes, bits)
        if bits == self.nbits:
            table = self._table
        else:  # prefix codebook: first owner of each prefix
            table = {}
            for row, key in enumerate(self.packed[:, :bits // 8]):
                table.setdefault(key.tobytes(), row)
        rows = np.fromiter((table.get(k.tobytes(), -1) for k in c[:, :bits // 8]), np.int64, len(c))
        return np.where(rows >= 0, self.labels[np.maximum(rows, 0)], -1)

    def predict_min_hamming(self, codes, bits: int | None = None, threads: int | None = None) -> np.ndarray:
        """The class with the nearest code (ties: the earlier codebook row)."""
        c, bits = self._codes(codes, bits)
        return self.labels[self._index.search(c, 1, search_bits=bits, threads=threads).ids[:, 0]]

    def min_distance(self, codes, bits: int | None = None, threads: int | None = None) -> np.ndarray:
        """Hamming distance from each code to the nearest class code."""
        c, bits = self._codes(codes, bits)
        return self._index.search(c, 1, search_bits=bits, threads=threads).distances[:, 0]

    def is_ood(self, codes, radius: int = 0, bits: int | None = None) -> np.ndarray:
        """True where no class code lies within ``radius`` bits (0: no exact owner)."""
        radius = v.positive_int(radius, "radius", minimum=0)
        return self.min_distance(codes, bits) > radius
