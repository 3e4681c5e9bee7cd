"""One named index on disk: its configuration, its current snapshot and its write-ahead log.

Folder layout: ``meta.json`` (configuration, which snapshot is current, the size and CRC-32 of each of its
files, and a CRC-32 of its own), ``snapshot-<seq>-<tag>/`` (``index.adanns`` and ``ids.npy``, or ``buffer.npy``
and ``ids.npy`` — plus ``attributes.json`` when they have attributes — for an index not trained yet) and
``wal.log`` (every write after that snapshot). Attributes (payloads, payloads.py) travel with their vectors:
in the upsert's log record, in ``index.adanns`` (its metadata) or ``attributes.json``.

Every write is validated, logged (fsynced), then applied under the exclusive lock; searches hold the
shared lock, so they see a batch entirely or not at all. A new snapshot is written beside the current
one and published by replacing ``meta.json`` (the commit point); only then are the log and the old
snapshot dropped, so a crash at any step leaves a state that loads with every acknowledged write.

States: ``ready``; ``read-only`` (a write was logged but could not be applied, or the log could not be cut
back after a failed append: searches go on, writes answer 503 until a restart replays the log);
``failed`` (the files on disk could not be loaded as they are: every route answers 503 with the reason,
the files are left untouched, ``adanns repair`` recovers explicitly).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import adanns

from . import faults, kinds, payloads, wal
from .errors import Invalid, NotFound, Unavailable, storage_error
from .rwlock import RWLock
from .wal import Op, Record, WriteAheadLog

log = logging.getLogger("adanns.server")

META_FORMAT = 2
# A vector whose squared norm stays below this keeps every score (ip <= |q||x|, l2 <= (|q| + |x|)^2) finite
# in float32, so a real hit never comes back with a score JSON cannot carry.
MAX_SQUARED_NORM = float(np.finfo(np.float32).max) / 8


class Damaged(Exception):
    """The files of a collection cannot be loaded as they are; the message says which and why."""


@dataclass
class Config:
    dim: int
    metric: str
    kind: str
    params: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)  # fields declared at creation: name -> type

    @staticmethod
    def resolve(dim: int, metric: str, kind: str, params: dict, attributes: dict | None = None) -> "Config":
        """Fills defaults and checks the parameters against the kind (Invalid on a problem)."""
        params = kinds.resolve(dim, metric, kind, params)
        attributes = payloads.check_declared(attributes or {})
        if attributes and kind not in payloads.kinds_with_filters():
            raise Invalid(f"kind {kind!r} does not store attributes (payloads) or take filters: "
                          f"create the index without 'attributes'")
        return Config(dim, metric, kind, params, attributes)

    def as_dict(self) -> dict:
        body = {"dim": self.dim, "metric": self.metric, "kind": self.kind, "params": self.params}
        if self.attributes:  # left out when none are declared, so older meta.json files read the same
            body["attributes"] = self.attributes
        return body


# ---------------------------------------------------------------------------------------- files
def fsync_dir(path: Path) -> None:
    """Makes a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomically(path: Path, obj: dict, point: str | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        if point:
            faults.point(f"{point}.write")
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    if point:
        faults.point(f"{point}.rename")
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _meta_crc(body: dict) -> int:
    return zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def write_meta(folder: Path, config: Config, snapshot: str | None, seq: int, files: dict) -> None:
    body = {"format": META_FORMAT, "config": config.as_dict(), "snapshot": snapshot, "seq": seq, "files": files}
    write_json_atomically(folder / "meta.json", {**body, "crc32": _meta_crc(body)}, point="meta")


def read_meta(folder: Path) -> dict:
    """meta.json, checked (its CRC, its fields); Damaged when it is missing, torn or altered."""
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise Damaged("meta.json is missing") from None
    except (OSError, ValueError) as e:
        raise Damaged(f"meta.json cannot be read ({e})") from None
    if not isinstance(meta, dict):
        raise Damaged("meta.json does not hold an object")
    if "crc32" in meta or meta.get("format", 1) >= 2:
        body = {k: v for k, v in meta.items() if k != "crc32"}
        if meta.get("crc32") != _meta_crc(body):
            raise Damaged("meta.json fails its checksum")
    try:
        config = meta["config"]
        if set(config) - {"attributes"} != {"dim", "metric", "kind", "params"}:
            raise ValueError(f"config keys {sorted(config)}")
        Config(int(config["dim"]), str(config["metric"]), str(config["kind"]), dict(config["params"]),
               payloads.check_declared(config.get("attributes", {})))
        if not (meta["snapshot"] is None or isinstance(meta["snapshot"], str)) or int(meta["seq"]) < 0:
            raise ValueError("bad snapshot or seq")
    except (KeyError, TypeError, ValueError, Invalid) as e:  # Invalid: declared attributes of an unknown type
        raise Damaged(f"meta.json is malformed ({e})") from None
    return meta


def create_empty_log(folder: Path) -> None:
    with open(folder / "wal.log", "wb") as f:
        os.fsync(f.fileno())


def file_digest(path: Path) -> dict:
    crc, size = 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    return {"size": size, "crc32": crc}


def _check_snapshot_files(path: Path, files: dict | None) -> None:
    if not path.is_dir():
        raise Damaged(f"the current snapshot {path.name} is missing")
    if files is None:  # written before snapshots carried checksums
        return
    for name, want in files.items():
        try:
            got = file_digest(path / name)
        except OSError as e:
            raise Damaged(f"{path.name}/{name} cannot be read ({e.strerror or e})") from None
        if got != want:
            what = "CRC-32" if got["size"] == want.get("size") else f"size ({got['size']} bytes, not {want.get('size')})"
            raise Damaged(f"{path.name}/{name} does not match meta.json: its {what} differs")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        faults.point("snapshot.write")
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------- the collection
class Collection:
    def __init__(self, folder: Path, config: Config | None, snapshot_every: int):
        self.folder = folder
        self.name = folder.name
        self.config = config
        self.lock = RWLock()
        self.state, self.reason = "ready", None
        self._snapshot_every = snapshot_every
        self._next_snapshot = snapshot_every  # log records at which the next snapshot is written
        self._ids: set[int] = set()
        self._next_id = 0  # default ids continue after the largest id written (or loaded) so far
        self._seq = 0
        # A kind that learns from data collects its vectors here (searched exactly) until there are enough to train on.
        self._buffer: dict[int, np.ndarray] = {}
        self._flat: adanns.FlatIndex | None = None
        self._index = None
        self._wal: WriteAheadLog | None = None
        self.filters = False  # whether the kind stores attributes and takes filters (set with the index)

    # ------------------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, folder: Path, config: Config, snapshot_every: int) -> "Collection":
        create_empty_log(folder)
        write_meta(folder, config, None, 0, {})
        return cls.open(folder, snapshot_every)

    @classmethod
    def failed(cls, folder: Path, reason: str, snapshot_every: int) -> "Collection":
        """A collection whose files could not be loaded: it answers with the reason and touches nothing."""
        try:
            config = Config(**read_meta(folder)["config"])
        except Exception:  # noqa: BLE001 - a failed index must still be listed, whatever its meta.json holds
            config = None
        c = cls(folder, config, snapshot_every)
        c.state, c.reason = "failed", reason
        return c

    @classmethod
    def open(cls, folder: Path, snapshot_every: int) -> "Collection":
        """Loads the current snapshot, then replays the log records it does not hold; Damaged when the files
        are not a consistent state (a torn log tail is not damage: it is cut off with a warning)."""
        meta = read_meta(folder)
        c = cls(folder, Config(**meta["config"]), snapshot_every)
        if not (folder / "wal.log").is_file():  # every collection has one from its creation on
            raise Damaged("wal.log is missing: the writes after the snapshot cannot be known")
        try:
            records = wal.read(folder / "wal.log")
        except wal.LogCorrupt as e:
            raise Damaged(str(e)) from None
        c._recover(meta, records, strict=True)
        c._wal = WriteAheadLog(folder / "wal.log")
        c._wal.records = c._replayed
        c._next_snapshot = max(snapshot_every, c._replayed + 1)
        _remove_stale(folder, keep=meta["snapshot"])
        return c

    def _recover(self, meta: dict, records: list[Record], strict: bool, report: list[str] | None = None,
                 discard_snapshot: bool = False) -> None:
        """Snapshot, then log. ``strict``: any problem raises Damaged; otherwise (repair) each problem is
        appended to ``report`` and skipped."""
        try:
            self._empty()
        except (ValueError, TypeError, Invalid) as e:
            raise Damaged(f"meta.json holds a configuration that cannot be built ({e})") from None
        if meta["snapshot"]:
            path = self.folder / meta["snapshot"]
            try:
                _check_snapshot_files(path, meta.get("files"))
                self._load_snapshot(path)
            except Exception as e:
                problem = e if isinstance(e, Damaged) else \
                    Damaged(f"snapshot {path.name} cannot be loaded ({type(e).__name__}: {e})")
                if not discard_snapshot:
                    raise problem from None
                report.append(f"discarded the snapshot ({problem}): every vector it held is lost; rebuilt from "
                              "the log alone")
                self._empty()
            self._seq = int(meta["seq"])
        self._replayed = 0
        skipped_old = 0
        for rec in records:
            if rec.seq <= self._seq:
                skipped_old += 1  # already in the snapshot (the crash came between snapshot and log reset)
                continue
            if rec.seq != self._seq + 1:
                problem = f"records {self._seq + 1}..{rec.seq - 1} are missing before byte {rec.offset} of wal.log"
                if strict:
                    raise Damaged(problem)
                report.append(problem)
            try:
                self._check_record(rec)
                self._apply(rec)
            except Exception as e:
                problem = (f"the {rec.op.name.lower()} record {rec.seq} at byte {rec.offset} of wal.log "
                           f"({len(rec.ids)} ids) cannot be applied: {e}")
                if strict:
                    raise Damaged(problem) from None
                report.append(f"skipped {problem}")
                continue
            self._seq = rec.seq
            self._replayed += 1
        if self._replayed:
            log.info("index %s: replayed %d log records", self.name, self._replayed)

    def close(self, snapshot: bool = True) -> None:
        with self.lock.write():
            if snapshot and self.state == "ready" and self._wal is not None and self._wal.records:
                try:
                    self._snapshot()
                except Exception as e:  # the log still holds everything: nothing is lost
                    log.warning("index %s: no snapshot on close (%s); the log will be replayed", self.name, e)
            if self._wal is not None:
                self._wal.close()
                self._wal = None

    def _empty(self) -> None:
        c = self.config
        self._ids, self._buffer, self._seq, self._next_id = set(), {}, 0, 0
        self._index = kinds.new_index(c.dim, c.metric, c.kind, c.params)
        self.filters = payloads.supports_filters(self._index)
        # Kinds that learn from data are searched exactly, from a buffer, until they are trained.
        self._flat = None if c.kind == "flat" else adanns.FlatIndex(c.dim, metric=c.metric)
        if c.attributes:
            payloads.declare(self._index, c.attributes)
            if self._flat is not None:
                payloads.declare(self._flat, c.attributes)

    def require(self, writing: bool) -> None:
        """503 (Unavailable) when the index cannot serve this request now; NotFound once it is deleted."""
        if self.state == "failed" or (writing and self.state == "read-only"):
            raise Unavailable(f"index {self.name!r} is {self.state}: {self.reason}")
        if self._wal is None and self.state == "ready":
            raise NotFound(f"index {self.name!r} was deleted")

    def _degrade(self, reason: str) -> None:
        self.state, self.reason = "read-only", reason
        log.error("index %s is read-only: %s", self.name, reason)

    # ------------------------------------------------------------------------------------ snapshots
    def _load_snapshot(self, path: Path) -> None:
        ids = np.load(path / "ids.npy", allow_pickle=False)
        if ids.ndim != 1 or ids.dtype.kind != "i":
            raise Damaged(f"{path.name}/ids.npy is not a 1-D integer array")
        self._ids = set(ids.tolist())
        self._next_id = int(ids.max()) + 1 if len(ids) else 0
        if (path / "buffer.npy").exists():
            vectors = np.load(path / "buffer.npy", allow_pickle=False)
            if vectors.shape != (len(ids), self.config.dim) or len(self._ids) != len(ids):
                raise Damaged(f"{path.name}: buffer.npy and ids.npy do not match")
            self._buffer = dict(zip(ids.tolist(), vectors))
            logged = None
            if (path / payloads.SNAPSHOT_FILE).exists():
                try:
                    logged = payloads.load(path / payloads.SNAPSHOT_FILE, len(ids))
                except ValueError as e:
                    raise Damaged(f"{path.name}: {e}") from None
            if len(ids):
                payloads.add(self._flat, vectors, ids, logged)
            elif logged:
                payloads.declare(self._flat, logged["types"])
        else:
            index = adanns.load(path / "index.adanns")
            kind, _ = kinds.describe_file(index)
            if kind != self.config.kind or index.dim != self.config.dim or len(index) != len(self._ids) \
                    or set(index.ids().tolist()) != self._ids:
                raise Damaged(f"{path.name}: index.adanns does not match meta.json and ids.npy")
            if self.config.attributes:
                try:
                    payloads.declare(index, self.config.attributes)
                except ValueError as e:
                    raise Damaged(f"{path.name}: its attributes do not match meta.json ({e})") from None
            self._index = index

    def _snapshot(self) -> None:
        """Writes the new snapshot beside the current one (fsynced), publishes it by replacing meta.json,
        then empties the log and removes the old snapshot. A crash at any step leaves either the old or
        the new snapshot current, and the log covers the rest."""
        name = f"snapshot-{self._seq}-{secrets.token_hex(4)}"
        tmp, path = self.folder / f".tmp-{name}", self.folder / name
        try:
            tmp.mkdir()
            ids = np.fromiter(self._buffer if self._buffer_active else self._ids, np.int64)
            if self._buffer_active:
                vectors = np.stack([self._buffer[i] for i in ids.tolist()]) if len(ids) else \
                    np.zeros((0, self.config.dim), np.float32)
                _save_npy(tmp / "buffer.npy", vectors)
                if payloads.save(tmp / payloads.SNAPSHOT_FILE, self._flat, ids):
                    _fsync_file(tmp / payloads.SNAPSHOT_FILE)
            else:
                faults.point("snapshot.write")
                self._index.save(tmp / "index.adanns")
            _save_npy(tmp / "ids.npy", ids)
            faults.point("snapshot.fsync")
            fsync_dir(tmp)
            files = {f.name: file_digest(f) for f in sorted(tmp.iterdir())}
            faults.point("snapshot.rename")
            tmp.rename(path)
            fsync_dir(self.folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            write_meta(self.folder, self.config, name, self._seq, files)  # the commit point
        except BaseException:
            try:
                committed = read_meta(self.folder)["snapshot"] == name
            except Damaged:
                committed = False
            if not committed:
                shutil.rmtree(path, ignore_errors=True)
                raise
        try:
            self._wal.reset()
        except OSError as e:  # harmless: its records are older than the snapshot and skipped on replay
            log.warning("index %s: the log was not emptied after a snapshot (%s)", self.name, e.strerror or e)
        self._next_snapshot = self._wal.records + self._snapshot_every
        faults.point("snapshot.cleanup")
        _remove_stale(self.folder, keep=name)

    # ------------------------------------------------------------------------------------ writes
    @property
    def _buffer_active(self) -> bool:
        return self._flat is not None and not self._index.is_trained

    def _write(self, rec: Record) -> None:
        """Log (durable), then apply; called with arguments already validated, so applying cannot fail."""
        self.require(writing=True)
        try:
            self._wal.append(rec)
        except OSError as e:
            if self._wal.failed:
                self._degrade(self._wal.failed)
            raise storage_error(f"index {self.name!r}: the write could not be logged", e) from None
        except wal.LogFailed as e:
            raise Unavailable(f"index {self.name!r} is read-only: {e}") from None
        try:
            self._apply(rec)
        except Exception as e:  # the log is ahead of memory now: stop writing, a restart replays it
            self._degrade(f"the logged write {rec.seq} could not be applied ({type(e).__name__}: {e})")
            raise Unavailable(f"index {self.name!r} is read-only: {self.reason}") from None
        self._seq = rec.seq
        if self._wal.records >= self._next_snapshot:
            try:
                self._snapshot()
            except Exception as e:  # the write is durable in the log; snapshot again later
                self._next_snapshot = self._wal.records + self._snapshot_every
                log.warning("index %s: snapshot failed (%s: %s); the log keeps every write", self.name,
                            type(e).__name__, e)

    def upsert(self, ids: np.ndarray | None, vectors: np.ndarray, attributes: dict | None = None) -> np.ndarray:
        """Writes the vectors; ``ids`` None: consecutive ids after the largest one so far (as the Python
        API's ``add``), assigned under the lock and logged, so a replay sees the same. ``attributes``:
        {field: [a value per vector]}, checked against the field types before anything is logged; the
        upsert replaces the attributes of the ids it writes (None: they have none). Returns the ids."""
        self.require(writing=True)
        vectors = np.asarray(vectors)
        given = ids is not None
        ids, vectors = self._check_vectors(ids if given else np.arange(len(vectors) if vectors.ndim else 0), vectors)
        if attributes is not None and not self.filters:
            raise Invalid(f"index {self.name!r} is of kind {self.config.kind!r}, which does not store attributes "
                          "(payloads); write the vectors without them")
        with self.lock.write():
            logged = None
            if attributes is not None:
                logged = payloads.resolve(payloads.fields(self._attribute_target()), attributes, len(ids))
            if not given:
                first = self._next_id
                if first + len(ids) > np.iinfo(np.int64).max:
                    raise Invalid("default ids would pass 2^63-1: give the ids explicitly")
                ids = np.arange(first, first + len(ids), dtype=np.int64)
            self._write(Record(Op.UPSERT, self._seq + 1, ids, vectors, attributes=logged))
        return ids

    def _attribute_target(self):
        """The index that holds the attributes now: the exact buffer until training, then the index."""
        return self._flat if self._buffer_active else self._index

    def remove(self, ids: np.ndarray) -> int:
        self.require(writing=True)
        ids = _check_ids(ids)
        with self.lock.write():
            self.require(writing=True)
            missing = [i for i in ids.tolist() if i not in self._ids]
            if missing:
                raise NotFound(f"{len(missing)} ids not in index {self.name!r} (first: {missing[0]}); nothing removed")
            self._write(Record(Op.REMOVE, self._seq + 1, ids, np.zeros((0, 0), np.float32)))
        return len(ids)

    def train(self) -> None:
        with self.lock.write():
            self.require(writing=True)
            if self.config.kind == "flat":
                raise Invalid(f"index {self.name!r} is of kind 'flat', which needs no training")
            if self._index.is_trained:
                return
            need = kinds.min_train_size(self.config.kind, self.config.params)
            if len(self._buffer) < need:
                raise Invalid(f"training an index of kind {self.config.kind!r} needs at least {need} vectors, "
                              f"index {self.name!r} has {len(self._buffer)}")
            self._write(Record(Op.TRAIN, self._seq + 1, np.zeros(0, np.int64), np.zeros((0, 0), np.float32)))

    def _check_record(self, rec: Record) -> None:
        """What `upsert`/`remove` check before logging, for a record read back from the log."""
        if rec.op == Op.UPSERT:
            self._check_vectors(rec.ids, rec.vectors)
            if rec.attributes is not None:
                if not self.filters:
                    raise ValueError(f"it carries attributes, which kind {self.config.kind!r} does not store")
                types = payloads.fields(self._attribute_target())
                clash = {f: t for f, t in rec.attributes["types"].items() if types.get(f, t) != t}
                if clash:
                    raise ValueError(f"its attribute types {clash} differ from the index's {types}")
                try:
                    payloads.resolve({**types, **rec.attributes["types"]}, rec.attributes["columns"], len(rec.ids))
                except Invalid as e:
                    raise ValueError(e.detail) from None
        elif rec.op == Op.REMOVE:
            missing = [i for i in _check_ids(rec.ids).tolist() if i not in self._ids]
            if missing:
                raise ValueError(f"{len(missing)} of its ids are not in the index (first: {missing[0]})")

    def _apply(self, rec: Record) -> None:
        if rec.op == Op.UPSERT:
            present = np.array([i for i in rec.ids.tolist() if i in self._ids], np.int64)
            target = self._flat if self._buffer_active else self._index
            if len(present):
                target.remove(present)
            payloads.add(target, rec.vectors, rec.ids, rec.attributes)
            self._ids.update(rec.ids.tolist())
            self._next_id = max(self._next_id, int(rec.ids.max()) + 1)
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
        logged = payloads.read(self._flat, ids) if self.filters else None
        self._index.train(vectors)
        payloads.add(self._index, vectors, ids, logged)
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
        _check_finite(vectors, "vectors")
        return ids, vectors

    # ------------------------------------------------------------------------------------ reads
    def search(self, queries: np.ndarray, k: int, threads: int, **knobs) -> adanns.SearchResult:
        return self.search_checked(self.check_queries(queries), k, threads, **knobs)

    def check_queries(self, queries: np.ndarray) -> np.ndarray:
        """The queries as a float32 (n, d) batch with d <= dim, or Invalid (Unavailable for a failed index)."""
        self.require(writing=False)
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[0] == 0 or queries.shape[1] == 0:
            raise Invalid(f"queries must be a non-empty (n, d) batch, got shape {queries.shape}")
        if queries.shape[1] > self.config.dim:
            raise Invalid(f"query length {queries.shape[1]} exceeds the index dimension {self.config.dim} "
                          "(a query may be a Matryoshka prefix, never longer)")
        with np.errstate(over="ignore"):
            queries = np.ascontiguousarray(queries, dtype=np.float32)
        _check_finite(queries, "queries")
        return queries

    def search_checked(self, queries: np.ndarray, k: int, threads: int, filter: dict | None = None,
                       **knobs) -> adanns.SearchResult:
        """Searches queries that passed `check_queries`; ``knobs``: nprobe, search_dim, ef, rerank_dim, rerank_k,
        target_recall, budget_mflops (None: not given); ``filter``: a filter expression (filters.py)."""
        given = self._check_search(filter, knobs)
        with self.lock.read():
            self.require(writing=False)
            return self._search(queries, k, threads, filter, given)

    def search_with_payload(self, queries: np.ndarray, k: int, threads: int, filter: dict | None = None,
                            **knobs) -> tuple[adanns.SearchResult, list[list[dict | None]]]:
        """`search_checked`, and the attributes of every hit (None at padding), read under the same lock
        so that they belong to the vectors the search found."""
        given = self._check_search(filter, knobs, payload=True)
        with self.lock.read():
            self.require(writing=False)
            res = self._search(queries, k, threads, filter, given)
            target = self._attribute_target()
            found = res.ids[res.ids >= 0]
            rows = iter(target.attributes(found) if len(found) and payloads.fields(target) else [{}] * len(found))
            return res, [[next(rows) if i >= 0 else None for i in hits] for hits in res.ids.tolist()]

    def payload(self, id_: int) -> dict | None:
        """The attributes of one id ({} when it has none; None for a kind without attributes)."""
        self.require(writing=False)
        with self.lock.read():
            self.require(writing=False)
            if id_ not in self._ids:
                raise NotFound(f"id {id_} is not in index {self.name!r}")
            if not self.filters:
                return None
            target = self._attribute_target()
            return target.attributes([id_])[0] if payloads.fields(target) else {}

    def _check_search(self, filter, knobs: dict, payload: bool = False) -> dict:
        """The knobs given, checked against the kind (Invalid names what it does not take)."""
        self.require(writing=False)
        kind = self.config.kind
        if (filter is not None or payload) and not self.filters:
            asked = "filter" if filter is not None else "with_payload"
            raise Invalid(f"index {self.name!r} is of kind {kind!r}, which does not store attributes or take "
                          f"filters ({asked}); kinds that do: {', '.join(payloads.kinds_with_filters())}")
        if filter is not None:
            payloads.check_filter(filter)
        given = {key: value for key, value in knobs.items() if value is not None}
        allowed = kinds.KNOBS[kind] | ({"target_recall", "budget_mflops"} if hasattr(self._index, "tune") else set())
        wrong = sorted(set(given) - allowed)
        if wrong:
            raise Invalid(f"{', '.join(wrong)} do{'es' if len(wrong) == 1 else ''} not apply to kind {kind!r} "
                          f"(index {self.name!r}); it takes {sorted(allowed)}")
        return given

    def _search(self, queries: np.ndarray, k: int, threads: int, filter, given: dict) -> adanns.SearchResult:
        """Under the read lock: the buffer's exact search until training, then the index's."""
        if filter is not None:
            given = {**given, "filter": filter}
        try:
            if self._buffer_active:  # not trained yet: exact search (recall 1) over what has been added
                exact = {key: given[key] for key in ("rerank_dim", "rerank_k", "filter") if key in given}
                return self._flat.search(queries, k=k, threads=threads, **exact)
            return self._index.search(queries, k=k, threads=threads, **given)
        except (ValueError, TypeError, RuntimeError, OverflowError) as e:  # RuntimeError: not tuned; Overflow:
            message = str(e)  # a filter's integer beyond int64
            if "index.tune(" in message:  # the Python API's advice, in the service's terms
                message = (f"{message.split(': call index.tune(')[0]} (index {self.name!r}): POST "
                           f"/indexes/{self.name}/tune with sample queries of this length and k={k} first")
            raise Invalid(message) from None

    def tune(self, queries: np.ndarray, k: int, threads: int, sample=None, seed: int = 0) -> "adanns.tuning.Frontier":
        """Measures the default grid on ``queries`` (exact ground truth from the index itself), keeps the
        frontier in the index and snapshots at once, so a restart keeps it."""
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[0] == 0 or queries.shape[1] == 0:
            raise Invalid(f"queries must be a non-empty (n, d) batch, got shape {queries.shape}")
        with self.lock.write():
            self.require(writing=True)
            if not hasattr(self._index, "tune"):
                raise Invalid(f"index {self.name!r} is of kind {self.config.kind!r}, which has no tuner: give its "
                              f"knobs ({', '.join(sorted(kinds.KNOBS[self.config.kind]))}) with each search")
            if self._buffer_active:
                raise Invalid(f"index {self.name!r} is not trained yet: its searches are exact, nothing to tune")
            if len(self._ids) < k:
                raise Invalid(f"index {self.name!r} holds {len(self._ids)} vectors, fewer than k = {k}")
            previous = self._index._user_meta()
            try:
                frontier = self._index.tune(queries, k=k, sample=sample, seed=seed, threads=threads)
            except (ValueError, TypeError) as e:
                raise Invalid(str(e)) from None
            try:
                self._snapshot()
            except Exception as e:  # not durable: do not serve a frontier a restart would not have
                self._index._set_user_meta(previous)
                if isinstance(e, OSError):
                    raise storage_error(f"index {self.name!r}: the tuned snapshot could not be written", e) from None
                raise Unavailable(f"index {self.name!r}: the tuned snapshot could not be written ({e}); "
                                  "nothing changed") from None
        return frontier

    def info(self) -> dict:
        config = self.config.as_dict() if self.config else {"dim": None, "metric": None, "kind": None, "params": None}
        base = {"name": self.name, **config, "state": self.state, "reason": self.reason, "attributes": None}
        if self.state == "failed":
            return {**base, "count": None, "trained": None, "bytes": None}
        with self.lock.read():
            index = self._flat if self._buffer_active else self._index
            fields = payloads.fields(index) if self.filters else None
            return {**base, "count": len(index), "trained": self._index.is_trained, "bytes": index.nbytes,
                    "attributes": fields}

    def stats(self) -> tuple[int, int]:
        """(vectors, bytes), for the metrics (zeros for a failed index)."""
        info = self.info()
        return info["count"] or 0, info["bytes"] or 0


def _remove_stale(folder: Path, keep: str | None) -> None:
    """Snapshots other than ``keep`` and unfinished ones: left over by a crash, or replaced."""
    for old in list(folder.glob("snapshot-*")) + list(folder.glob(".tmp-snapshot-*")):
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def _check_finite(x: np.ndarray, what: str) -> None:
    """One pass: a row's squared norm (float64) is NaN or inf when the row holds NaN or inf, and beyond
    MAX_SQUARED_NORM when its scores could overflow float32."""
    norms = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    if norms.max(initial=0.0) <= MAX_SQUARED_NORM:  # also False for NaN
        return
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise Invalid(f"{what} contain NaN or infinity (or values beyond float32; first bad row: "
                      f"{int(np.flatnonzero(bad)[0])})")
    row = int(np.flatnonzero(norms > MAX_SQUARED_NORM)[0])
    raise Invalid(f"{what} row {row} has norm {np.sqrt(norms[row]):.3g}, beyond {np.sqrt(MAX_SQUARED_NORM):.3g}: "
                  "its scores would overflow float32")


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
