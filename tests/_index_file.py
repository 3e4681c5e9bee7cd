"""The adanns index container (cpp/include/adanns/io.h) in Python, for tests that forge files: split a
file into header fields, metadata and data; re-seal a file whose bytes were changed (checksums
recomputed, so a loader's section parsers see the change instead of a checksum mismatch); assemble a
well-formed file around arbitrary metadata and data."""

from __future__ import annotations

import struct

MAGIC = b"ADANNSIX"
HEADER = struct.Struct("<8sII7Q")  # magic, version, kind, meta_off, meta_size, data_off, data_size, 3 sums
HEADER_SIZE = HEADER.size  # 72
ALIGN = 64
KINDS = {"flat": 1, "ivf": 2, "binary": 3, "pq": 4, "graph": 5}

_M = (1 << 64) - 1
P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_BLOCK = 1 << 20


def _rotl(v: int, r: int) -> int:
    return ((v << r) | (v >> (64 - r))) & _M


def checksum64(data: bytes) -> int:
    """The engine's checksum64 (four multiply-rotate lanes over 32-byte blocks, tail bytes, final mix)."""
    a, b, c, d = (P1 + P2) & _M, P2, 0, (-P1) & _M
    n = len(data)
    full = n - n % 32
    words = struct.unpack_from(f"<{full // 8}Q", data) if full else ()
    for i in range(0, len(words), 4):
        a = _rotl((a + words[i] * P2) & _M, 31) * P1 & _M
        b = _rotl((b + words[i + 1] * P2) & _M, 31) * P1 & _M
        c = _rotl((c + words[i + 2] * P2) & _M, 31) * P1 & _M
        d = _rotl((d + words[i + 3] * P2) & _M, 31) * P1 & _M
    h = (_rotl(a, 1) + _rotl(b, 7) + _rotl(c, 12) + _rotl(d, 18) + n) & _M
    for byte in data[full:]:
        h = _rotl(h ^ (byte * P3 & _M), 11) * P1 & _M
    h ^= h >> 33
    h = h * P2 & _M
    h ^= h >> 29
    h = h * P3 & _M
    return h ^ (h >> 32)


def data_checksum(data: bytes) -> int:
    """The data section's checksum: 1 MiB blocks hashed and chained (0 for no data)."""
    h = 0
    for i in range(0, len(data), _BLOCK):
        h = checksum64(struct.pack("<QQ", h, checksum64(data[i:i + _BLOCK])))
    return h


def parse_header(raw: bytes) -> dict:
    magic, version, kind, meta_off, meta_size, data_off, data_size, meta_sum, data_sum, header_sum = \
        HEADER.unpack_from(raw)
    return dict(magic=magic, version=version, kind=kind, meta_off=meta_off, meta_size=meta_size,
                data_off=data_off, data_size=data_size, meta_sum=meta_sum, data_sum=data_sum, header_sum=header_sum)


def split(raw: bytes) -> tuple[int, bytes, bytes]:
    """(kind, metadata, data) of a well-formed file."""
    h = parse_header(raw)
    assert h["magic"] == MAGIC and h["meta_off"] == HEADER_SIZE and h["data_off"] + h["data_size"] == len(raw)
    return h["kind"], raw[h["meta_off"]:h["meta_off"] + h["meta_size"]], raw[h["data_off"]:]


def assemble(kind: int, meta: bytes, data: bytes, version: int = 1) -> bytes:
    """A file exactly as the engine writes it (header, metadata, zero padding to 64 bytes, data)."""
    data_off = -(-(HEADER_SIZE + len(meta)) // ALIGN) * ALIGN
    h = [MAGIC, version, kind, HEADER_SIZE, len(meta), data_off, len(data), checksum64(meta), data_checksum(data), 0]
    head = HEADER.pack(*h)
    h[-1] = checksum64(head[:-8])
    return HEADER.pack(*h) + meta + b"\0" * (data_off - HEADER_SIZE - len(meta)) + data


def reseal(raw: bytes) -> bytes:
    """``raw`` with its three checksums recomputed from whatever its (possibly changed) header fields
    say the sections are, clamped to the file; a file shorter than the header is returned as is."""
    if len(raw) < HEADER_SIZE:
        return raw
    h = parse_header(raw)
    meta = raw[min(h["meta_off"], len(raw)):min(h["meta_off"] + h["meta_size"], len(raw))]
    data = raw[min(h["data_off"], len(raw)):min(h["data_off"] + h["data_size"], len(raw))]
    fields = [h["magic"], h["version"], h["kind"], h["meta_off"], h["meta_size"], h["data_off"], h["data_size"],
              checksum64(meta), data_checksum(data), 0]
    fields[-1] = checksum64(HEADER.pack(*fields)[:-8])
    return HEADER.pack(*fields) + raw[HEADER_SIZE:]
