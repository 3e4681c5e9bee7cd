"""Write-ahead log: framed records appended and fsynced before a write is acknowledged.

Frame: ``u32 payload length | u32 crc32(payload) | payload``; payload: ``u8 op | u64 seq | u32 n | u32 d``
then ``n`` int64 ids and ``n*d`` float32 values, little-endian. Replay stops at the first torn or corrupt
frame (a crash mid-append leaves one at the end), warns, and truncates the file there so new records
never follow garbage.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

log = logging.getLogger("adanns.server")

_FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<BQII")


class Op(IntEnum):
    UPSERT = 1
    REMOVE = 2
    TRAIN = 3


@dataclass(frozen=True)
class Record:
    op: Op
    seq: int
    ids: np.ndarray       # (n,) int64
    vectors: np.ndarray   # (n, d) float32; (0, 0) when the op carries none


def encode(rec: Record) -> bytes:
    vectors = np.ascontiguousarray(rec.vectors, dtype="<f4")
    n, d = (vectors.shape if vectors.size else (len(rec.ids), 0))
    payload = b"".join((_HEAD.pack(int(rec.op), rec.seq, n, d),
                        np.ascontiguousarray(rec.ids, dtype="<i8").tobytes(), vectors.tobytes()))
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> Record:
    op, seq, n, d = _HEAD.unpack_from(payload)
    off = _HEAD.size
    if len(payload) != off + 8 * n + 4 * n * d:
        raise ValueError("payload length does not match its header")
    ids = np.frombuffer(payload, "<i8", n, off).astype(np.int64)
    vectors = np.frombuffer(payload, "<f4", n * d, off + 8 * n).astype(np.float32).reshape(n, d)
    return Record(Op(op), seq, ids, vectors)


def replay(path: Path) -> list[Record]:
    """Every intact record of the log at ``path``; a torn or corrupt tail is cut off with a warning."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, off = [], 0
    while off < len(data):
        problem = None
        if off + _FRAME.size > len(data):
            problem = "torn frame header"
        else:
            length, crc = _FRAME.unpack_from(data, off)
            payload = data[off + _FRAME.size: off + _FRAME.size + length]
            if len(payload) < length:
                problem = "torn record"
            elif zlib.crc32(payload) != crc:
                problem = "checksum mismatch"
            else:
                try:
                    records.append(_decode(payload))
                except ValueError as e:
                    problem = f"malformed record ({e})"
        if problem:
            log.warning("%s: %s at byte %d of %d; dropping the rest of the log (%d records kept)",
                        path, problem, off, len(data), len(records))
            with open(path, "r+b") as f:
                f.truncate(off)
                os.fsync(f.fileno())
            break
        off += _FRAME.size + length
    return records


class WriteAheadLog:
    """Append-only; ``append`` returns once the record is on disk (write + flush + fsync)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "ab")
        self.records = 0  # records appended since the log (re)started, to decide on snapshots

    def append(self, rec: Record) -> None:
        self._file.write(encode(rec))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records += 1

    def reset(self) -> None:
        """Empties the log (after a snapshot holds everything it had)."""
        self._file.truncate(0)
        self._file.seek(0)
        os.fsync(self._file.fileno())
        self.records = 0

    def close(self) -> None:
        self._file.close()
