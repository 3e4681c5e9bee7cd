"""Write-ahead log: framed records appended and fsynced before a write is acknowledged.

Frame: ``u32 payload length | u32 crc32(payload) | payload``; payload: ``u8 op | u64 seq | u32 n | u32 d``
then ``n`` int64 ids and ``n*d`` float32 values, little-endian. Sequence numbers are consecutive. An upsert
that carries attributes is written with op byte 4 and its attributes follow the values as UTF-8 JSON
(``{"types": {field: type}, "columns": {field: [value per vector]}}``): the checksum covers them, so a
write and its attributes are logged, and survive, as one record. Logs written before attributes existed
read unchanged.

An append is all or nothing: on any error the file is cut back to the end of the last good record
before the error is reported, so a failed append never leaves bytes for the next one to follow.

Reading tells two kinds of damage apart. A bad frame with no intact frame after it is a torn tail (a
crash in the middle of an append): it is cut off with a warning. A bad frame with intact frames after
it, or a break in the sequence numbers, is corruption: `LogCorrupt` is raised and the file is left as
it is, for `adanns repair` to salvage explicitly.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from . import faults

log = logging.getLogger("adanns.server")

_FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<BQII")


class Op(IntEnum):
    UPSERT = 1
    REMOVE = 2
    TRAIN = 3


# The op byte of an upsert whose record carries attributes (decoded as Op.UPSERT with ``attributes`` set).
_UPSERT_WITH_ATTRIBUTES = 4


class LogCorrupt(Exception):
    """The log holds damage that is not a torn tail; the message says where."""


@dataclass(frozen=True)
class Record:
    op: Op
    seq: int
    ids: np.ndarray       # (n,) int64
    vectors: np.ndarray   # (n, d) float32; (0, 0) when the op carries none
    offset: int = -1      # byte offset of the frame in its log, when read from one
    attributes: dict | None = None  # upserts: {"types": {field: type}, "columns": {field: values}}, or None


def encode(rec: Record) -> bytes:
    vectors = np.ascontiguousarray(rec.vectors, dtype="<f4")
    n, d = (vectors.shape if vectors.size else (len(rec.ids), 0))
    op, tail = int(rec.op), b""
    if rec.attributes is not None:
        op = _UPSERT_WITH_ATTRIBUTES
        tail = json.dumps(rec.attributes, separators=(",", ":"), allow_nan=False).encode()
    payload = b"".join((_HEAD.pack(op, rec.seq, n, d),
                        np.ascontiguousarray(rec.ids, dtype="<i8").tobytes(), vectors.tobytes(), tail))
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes, offset: int) -> Record:
    op, seq, n, d = _HEAD.unpack_from(payload)
    off = _HEAD.size
    if op not in Op.__members__.values() and op != _UPSERT_WITH_ATTRIBUTES:
        raise ValueError(f"unknown op {op}")
    end = off + 8 * n + 4 * n * d
    if len(payload) != end and not (op == _UPSERT_WITH_ATTRIBUTES and len(payload) > end):
        raise ValueError("payload length does not match its header")
    ids = np.frombuffer(payload, "<i8", n, off).astype(np.int64)
    vectors = np.frombuffer(payload, "<f4", n * d, off + 8 * n).astype(np.float32).reshape(n, d)
    attributes = None
    if op == _UPSERT_WITH_ATTRIBUTES:
        try:
            attributes = json.loads(payload[end:])
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"its attributes are not JSON ({e})") from None
        if not isinstance(attributes, dict) or set(attributes) != {"types", "columns"}:
            raise ValueError("its attributes lack types or columns")
        op = Op.UPSERT
    return Record(Op(op), seq, ids, vectors, offset, attributes)


def _frame_at(data: bytes, off: int) -> tuple[Record | None, int, str]:
    """(record, end offset, "") for an intact frame at ``off``, else (None, 0, what is wrong)."""
    if off + _FRAME.size > len(data):
        return None, 0, "torn frame header"
    length, crc = _FRAME.unpack_from(data, off)
    end = off + _FRAME.size + length
    if end > len(data):
        return None, 0, "torn record"
    payload = data[off + _FRAME.size:end]
    if zlib.crc32(payload) != crc:
        return None, 0, "checksum mismatch"
    if length < _HEAD.size:
        return None, 0, "record shorter than its header"
    try:
        return _decode(payload, off), end, ""
    except ValueError as e:
        return None, 0, f"malformed record ({e})"


def _next_intact_frame(data: bytes, start: int) -> int | None:
    """The offset of the first intact frame at or after ``start``, by trying every offset. Candidates are
    filtered on their header first (op byte, length = header + 8n + 4nd, inside the file), vectorised,
    so only plausible offsets pay for a checksum."""
    buf = np.frombuffer(data, np.uint8)
    step = 1 << 20
    for lo in range(start, max(len(data) - _FRAME.size - _HEAD.size, start) + 1, step):
        hi = min(lo + step, len(data) - _FRAME.size - _HEAD.size + 1)
        if hi <= lo:
            break
        offs = np.arange(lo, hi, dtype=np.int64)

        def u32(at):
            b = buf[at[:, None] + np.arange(4)].astype(np.uint64)
            return (b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16 | b[:, 3] << 24).astype(np.int64)

        length = u32(offs)
        op = buf[offs + 8]
        n, d = u32(offs + 17), u32(offs + 21)
        base = _HEAD.size + 8 * n + 4 * n * d
        plausible = ((op >= 1) & (op <= _UPSERT_WITH_ATTRIBUTES)
                     & ((length == base) | ((op == _UPSERT_WITH_ATTRIBUTES) & (length > base)))
                     & (offs + _FRAME.size + length <= len(data)))
        for off in offs[plausible].tolist():
            if _frame_at(data, off)[0] is not None:
                return off
    return None


@dataclass
class Damage:
    offset: int   # where the damage starts
    end: int      # where intact frames resume (the file size when none do)
    reason: str

    def __str__(self) -> str:
        return f"bytes {self.offset}-{self.end}: {self.reason}"


def scan(data: bytes) -> tuple[list[Record], list[Damage]]:
    """Every intact frame, in file order, and the damaged byte ranges between them."""
    records, damage, off = [], [], 0
    while off < len(data):
        rec, end, problem = _frame_at(data, off)
        if rec is not None:
            records.append(rec)
            off = end
            continue
        resume = _next_intact_frame(data, off + 1)
        damage.append(Damage(off, len(data) if resume is None else resume, problem))
        if resume is None:
            break
        off = resume
    return records, damage


def read(path: Path) -> list[Record]:
    """The records of the log at ``path``. A torn tail is cut off (with a warning); any other damage, or a
    break in the sequence numbers, raises `LogCorrupt` and leaves the file untouched."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, damage = scan(data)
    if damage and damage[0].end < len(data):
        raise LogCorrupt(f"{path.name}: {damage[0]}, and intact records follow "
                         f"({len(records)} intact records in all); run `adanns repair` to salvage them explicitly")
    for prev, rec in zip(records, records[1:]):
        if rec.seq != prev.seq + 1:
            raise LogCorrupt(f"{path.name}: the record at byte {rec.offset} has sequence number {rec.seq} "
                             f"after {prev.seq}")
    if damage:
        torn = damage[0]
        log.warning("%s: %s at byte %d of %d (a torn tail: an append a crash interrupted); cut off, %d records "
                    "kept", path, torn.reason, torn.offset, len(data), len(records))
        with open(path, "r+b") as f:
            f.truncate(torn.offset)
            os.fsync(f.fileno())
    return records


class LogFailed(Exception):
    """The log could not be cut back after a failed append: its last record's fate is unknown."""


class WriteAheadLog:
    """Append-only; ``append`` returns once the record is on disk (write + fsync) and raises OSError,
    with the file cut back to its previous end, when it is not."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._size = os.lseek(self._fd, 0, os.SEEK_END)
        self.records = 0  # records appended since the log (re)started, to decide on snapshots
        self.failed: str | None = None

    def append(self, rec: Record) -> None:
        if self.failed:
            raise LogFailed(self.failed)
        frame = encode(rec)
        try:
            _write_all(self._fd, frame, self._size)
            faults.point("wal.fsync")
            os.fsync(self._fd)
        except OSError as error:
            self._roll_back(error)
            raise
        self._size += len(frame)
        self.records += 1

    def _roll_back(self, error: OSError) -> None:
        try:
            faults.point("wal.rollback")
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
        except OSError as again:
            self.failed = (f"a log append failed ({error.strerror or error}) and the log could not be cut back "
                           f"({again.strerror or again}); restart the service to recover from the log")
            log.error("%s: %s", self.path, self.failed)

    def reset(self) -> None:
        """Empties the log (after a snapshot holds everything it had)."""
        faults.point("wal.reset")
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self._size = 0
        self.records = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: bytes, at: int) -> None:
    view = memoryview(data)
    if faults._plan:  # an injected failure leaves half a frame behind, as a full disk would
        try:
            faults.point("wal.write")
        except OSError:
            os.pwrite(fd, view[: len(view) // 2], at)
            raise
    while view:
        written = os.pwrite(fd, view, at)
        view, at = view[written:], at + written
