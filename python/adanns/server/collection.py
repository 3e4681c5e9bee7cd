"""One named index on disk: its configuration, its latest snapshot and its write-ahead log.

Folder layout: ``meta.json`` (configuration + which snapshot is current), ``snapshot-<seq>/`` (``index.adanns``
and ``ids.npy``, or ``buffer.npy`` and ``ids.npy`` for an index not trained yet) and ``wal.log``
(every write after that snapshot). Every write is validated, logged (fsynced), then applied under the
exclusive lock; searches hold the shared lock, so they see a batch entirely or not at all.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import adanns

from . import kinds
from .errors import Invalid, NotFound
from .rwlock import RWLock
from .wal import Op, Record, WriteAheadLog, replay

log = logging.getLogger("adanns.server")


@dataclass
class Config:
    dim: int
    metric: str
    kind: str
    params: dict = field(default_factory=dict)

    @staticmethod
    def resolve(dim: int, metric: str, kind: str, params: dict) -> "Config":
        """Fills defaults and checks the parameters against the kind (Invalid on a problem)."""
        return Config(dim, metric, kind, kinds.resolve(dim, metric, kind, params))

    def as_dict(self) -> dict:
        return {"dim": self.dim, "metric": self.metric, "kind": self.kind, "params": self.params}


def write_json_atomically(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Makes a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Collection:
    def __init__(self, folder: Path, config: Config, snapshot_every: int):
        self.folder = folder
        self.name = folder.name
        self.config = config
        self.lock = RWLock()
        self._snapshot_every = snapshot_every
        self._ids: set[int] = set()
        self._seq = 0
        # A kind that learns from data collects its vectors here (searched exactly) until there are enough to train on.
        self._buffer: dict[int, np.ndarray] = {}
        self._flat: adanns.FlatIndex | None = None
        self._index = None
        self._wal: WriteAheadLog | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, folder: Path, config: Config, snapshot_every: int) -> "Collection":
        write_json_atomically(folder / "meta.json", {"config": config.as_dict(), "snapshot": None, "seq": 0})
        return cls.open(folder, snapshot_every)

    @classmethod
    def open(cls, folder: Path, snapshot_every: int) -> "Collection":
        """Loads the current snapshot, then replays the log records it does not hold."""
        meta = json.loads((folder / "meta.json").read_text())
        c = cls(folder, Config(**meta["config"]), snapshot_every)
        c._empty()
        if meta["snapshot"]:
            c._load_snapshot(folder / meta["snapshot"])
            c._seq = meta["seq"]
        wal_path = folder / "wal.log"
        replayed = 0
        for rec in replay(wal_path):
            if rec.seq <= c._seq:
                continue  # already in the snapshot (the crash came between snapshot and log reset)
            c._apply(rec)
            c._seq = rec.seq
            replayed += 1
        if replayed:
            log.info("index %s: replayed %d log records", c.name, replayed)
        c._wal = WriteAheadLog(wal_path)
        c._wal.records = replayed
        return c

    def close(self, snapshot: bool = True) -> None:
        with self.lock.write():
            if snapshot and self._wal is not None and self._wal.records:
                self._snapshot()
            if self._wal is not None:
                self._wal.close()
                self._wal = None

    def _empty(self) -> None:
        c = self.config
        self._ids, self._buffer = set(), {}
        self._index = kinds.new_index(c.dim, c.metric, c.kind, c.params)
        # Kinds that learn from data are searched exactly, from a buffer, until they are trained.
        self._flat = None if c.kind == "flat" else adanns.FlatIndex(c.dim, metric=c.metric)

    # ------------------------------------------------------------------------------------ snapshots
    def _load_snapshot(self, path: Path) -> None:
        ids = np.load(path / "ids.npy")
        self._ids = set(ids.tolist())
        if (path / "buffer.npy").exists():
            vectors = np.load(path / "buffer.npy")
            self._buffer = dict(zip(ids.tolist(), vectors))
            if len(ids):
                self._flat.add(vectors, ids)
        else:
            self._index = adanns.load(path / "index.adanns")

    def _snapshot(self) -> None:
        """Writes snapshot-<seq>/ (fsynced), points meta.json at it (atomic rename), then resets the log.
        A crash at any step leaves either the old or the new snapshot current, and the log covers the rest."""
        path = self.folder / f"snapshot-{self._seq}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()
        ids = np.fromiter(self._buffer if self._buffer_active else self._ids, np.int64)
        if self._buffer_active:
            vectors = np.stack([self._buffer[i] for i in ids.tolist()]) if len(ids) else \
                np.zeros((0, self.config.dim), np.float32)
            _save_npy(path / "buffer.npy", vectors)
        else:
            self._index.save(path / "index.adanns")
        _save_npy(path / "ids.npy", ids)
        fsync_dir(path)
        write_json_atomically(self.folder / "meta.json",
                              {"config": self.config.as_dict(), "snapshot": path.name, "seq": self._seq})
        self._wal.reset()
        for old in self.folder.glob("snapshot-*"):
            if old != path:
                shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------------------------------ writes
    @property
    def _buffer_active(self) -> bool:
        return self._flat is not None and not self._index.is_trained

    def _write(self, rec: Record) -> None:
        """Log (durable), then apply; called with arguments already validated, so applying cannot fail."""
        if self._wal is None:
            raise NotFound(f"index {self.name!r} was deleted")
        self._wal.append(rec)
        self._apply(rec)
        self._seq = rec.seq
        if self._wal.records >= self._snapshot_every:
            self._snapshot()

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> int:
        ids, vectors = self._check_vectors(ids, vectors)
        with self.lock.write():
            self._write(Record(Op.UPSERT, self._seq + 1, ids, vectors))
        return len(ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = _check_ids(ids)
        with self.lock.write():
            missing = [i for i in ids.tolist() if i not in self._ids]
            if missing:
                raise NotFound(f"{len(missing)} ids not in index {self.name!r} (first: {missing[0]}); nothing removed")
            self._write(Record(Op.REMOVE, self._seq + 1, ids, np.zeros((0, 0), np.float32)))
        return len(ids)

    def train(self) -> None:
        with self.lock.write():
            if self.config.kind == "flat":
                raise Invalid(f"index {self.name!r} is of kind 'flat', which needs no training")
            if self._index.is_trained:
                return
            need = kinds.min_train_size(self.config.kind, self.config.params)
            if len(self._buffer) < need:
                raise Invalid(f"training an index of kind {self.config.kind!r} needs at least {need} vectors, "
                              f"index {self.name!r} has {len(self._buffer)}")
            self._write(Record(Op.TRAIN, self._seq + 1, np.zeros(0, np.int64), np.zeros((0, 0), np.float32)))

    def _apply(self, rec: Record) -> None:
        if rec.op == Op.UPSERT:
            present = np.array([i for i in rec.ids.tolist() if i in self._ids], np.int64)
            target = self._flat if self._buffer_active else self._index
            if len(present):
                target.remove(present)
            target.add(rec.vectors, rec.ids)
            self._ids.update(rec.ids.tolist())
            if self._buffer_active:
                self._buffer.update(zip(rec.ids.tolist(), rec.vectors))
                if len(self._buffer) >= self.config.params["train_size"]:
                    self._train_from_buffer()
        elif rec.op == Op.REMOVE:
            (self._flat if self._buffer_active else self._index).remove(rec.ids)
            self._ids.difference_update(rec.ids.tolist())
            for i in rec.ids.tolist():
                self._buffer.pop(i, None)
        elif rec.op == Op.TRAIN and self._buffer_active:
            self._train_from_buffer()

    def _train_from_buffer(self) -> None:
        ids = np.fromiter(self._buffer, np.int64, len(self._buffer))
        vectors = np.stack([self._buffer[i] for i in ids.tolist()])
        self._index.train(vectors)
        self._index.add(vectors, ids)
        self._buffer, self._flat = {}, adanns.FlatIndex(self.config.dim, metric=self.config.metric)
        log.info("index %s: trained on %d vectors", self.name, len(ids))

    def _check_vectors(self, ids, vectors) -> tuple[np.ndarray, np.ndarray]:
        ids = _check_ids(ids)
        vectors = np.asarray(vectors)
        if vectors.dtype.kind not in "fiu" or vectors.ndim != 2:
            raise Invalid(f"vectors must be a 2-D array of numbers, got dtype {vectors.dtype} shape {vectors.shape}")
        if vectors.shape[1] != self.config.dim:
            raise Invalid(f"vectors must have dimension {self.config.dim} (index {self.name!r}), "
                          f"got {vectors.shape[1]}")
        if vectors.shape[0] != len(ids):
            raise Invalid(f"got {len(ids)} ids for {vectors.shape[0]} vectors")
        with np.errstate(over="ignore"):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise Invalid(f"vectors contain NaN or infinity (or values beyond float32; first bad row: "
                          f"{int(np.flatnonzero(bad)[0])})")
        return ids, vectors

    # ------------------------------------------------------------------------------------ reads
    def search(self, queries: np.ndarray, k: int, threads: int, nprobe=None, search_dim=None, rerank_dim=None,
               rerank_k=None, target_recall=None, budget_mflops=None) -> adanns.SearchResult:
        return self.search_checked(self.check_queries(queries), k, threads, nprobe=nprobe, search_dim=search_dim,
                                   rerank_dim=rerank_dim, rerank_k=rerank_k, target_recall=target_recall,
                                   budget_mflops=budget_mflops)

    def check_queries(self, queries: np.ndarray) -> np.ndarray:
        """The queries as a float32 (n, d) batch with d <= dim, or Invalid."""
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[0] == 0 or queries.shape[1] == 0:
            raise Invalid(f"queries must be a non-empty (n, d) batch, got shape {queries.shape}")
        if queries.shape[1] > self.config.dim:
            raise Invalid(f"query length {queries.shape[1]} exceeds the index dimension {self.config.dim} "
                          "(a query may be a Matryoshka prefix, never longer)")
        with np.errstate(over="ignore"):
            queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not np.isfinite(queries).all():
            row = int(np.flatnonzero(~np.isfinite(queries).all(axis=1))[0])
            raise Invalid(f"queries contain NaN or infinity (or values beyond float32; first bad row: {row})")
        return queries

    def search_checked(self, queries: np.ndarray, k: int, threads: int, nprobe=None, search_dim=None,
                       rerank_dim=None, rerank_k=None, target_recall=None, budget_mflops=None) -> adanns.SearchResult:
        """Searches queries that passed `check_queries`."""
        kind = self.config.kind
        given = dict(nprobe=nprobe, search_dim=search_dim, rerank_dim=rerank_dim, rerank_k=rerank_k,
                     target_recall=target_recall, budget_mflops=budget_mflops)
        given = {key: value for key, value in given.items() if value is not None}
        allowed = kinds.KNOBS[kind] | ({"target_recall", "budget_mflops"} if hasattr(self._index, "tune") else set())
        wrong = sorted(set(given) - allowed)
        if wrong:
            raise Invalid(f"{', '.join(wrong)} do{'es' if len(wrong) == 1 else ''} not apply to kind {kind!r} "
                          f"(index {self.name!r}); it takes {sorted(allowed)}")
        with self.lock.read():
            try:
                if self._buffer_active:  # not trained yet: exact search (recall 1) over what has been added
                    exact = {key: given[key] for key in ("rerank_dim", "rerank_k") if key in given}
                    return self._flat.search(queries, k=k, threads=threads, **exact)
                return self._index.search(queries, k=k, threads=threads, **given)
            except (ValueError, TypeError, RuntimeError) as e:  # RuntimeError: not tuned
                raise Invalid(str(e)) from None

    def tune(self, queries: np.ndarray, k: int, threads: int, sample=None, seed: int = 0) -> "adanns.tuning.Frontier":
        """Measures the default grid on ``queries`` (exact ground truth from the index itself), keeps the
        frontier in the index and snapshots at once, so a restart keeps it."""
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[0] == 0 or queries.shape[1] == 0:
            raise Invalid(f"queries must be a non-empty (n, d) batch, got shape {queries.shape}")
        with self.lock.write():
            if self._wal is None:
                raise NotFound(f"index {self.name!r} was deleted")
            if not hasattr(self._index, "tune"):
                raise Invalid(f"index {self.name!r} is of kind {self.config.kind!r}, which has no tuner: give its "
                              f"knobs ({', '.join(sorted(kinds.KNOBS[self.config.kind]))}) with each search")
            if self._buffer_active:
                raise Invalid(f"index {self.name!r} is not trained yet: its searches are exact, nothing to tune")
            if len(self._ids) < k:
                raise Invalid(f"index {self.name!r} holds {len(self._ids)} vectors, fewer than k = {k}")
            try:
                frontier = self._index.tune(queries, k=k, sample=sample, seed=seed, threads=threads)
            except (ValueError, TypeError) as e:
                raise Invalid(str(e)) from None
            self._snapshot()
        return frontier

    def info(self) -> dict:
        with self.lock.read():
            index = self._flat if self._buffer_active else self._index
            return {"name": self.name, **self.config.as_dict(), "count": len(index),
                    "trained": self._index.is_trained, "bytes": index.nbytes}

    def stats(self) -> tuple[int, int]:
        """(vectors, bytes), for the metrics."""
        info = self.info()
        return info["count"], info["bytes"]


def _check_ids(ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.size == 0:
        raise Invalid("ids must not be empty")
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise Invalid(f"ids must be a 1-D array of integers, got dtype {ids.dtype} shape {ids.shape}")
    if ids.dtype.kind == "u" and ids.max() > np.iinfo(np.int64).max or ids.min() < 0:
        raise Invalid("ids must be integers in [0, 2^63)")
    ids = ids.astype(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        raise Invalid(f"ids must be unique within a request; {int(uniq[counts > 1][0])} repeats")
    return ids


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
