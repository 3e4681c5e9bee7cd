"""The manifest of a sharded build: ``MANIFEST_DIR/manifest.json`` beside one ordinary adanns index file per
shard (``shard-<s>.adanns``, each loads with `adanns.load` and serves with `adanns serve` on its own).

JSON with a format name, a version and a CRC-32 of its canonical body, so a truncated or edited manifest is
refused (ValueError) rather than served with shards missing. It records the index (name, kind, dim, metric,
parameters), the sharding rule and shard count, and per shard its file, size, CRC-32 and row count.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = "adanns-cluster-manifest"
VERSION = 1
FILE_NAME = "manifest.json"


@dataclass
class ShardFile:
    shard: int
    file: str
    rows: int
    bytes: int
    crc32: int


@dataclass
class Manifest:
    name: str
    kind: str
    dim: int
    metric: str
    params: dict
    rule: str
    shards: list[ShardFile]
    rows: int
    build: dict = field(default_factory=dict)  # how it was built (input, seconds, sample size): informative

    def shard_path(self, folder: Path, s: int) -> Path:
        return Path(folder) / self.shards[s].file

    def body(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}


def _crc(body: dict) -> int:
    return zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def file_crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def write(folder: Path, manifest: Manifest) -> Path:
    """Writes ``folder/manifest.json`` atomically (temporary file, fsync, rename)."""
    body = manifest.body()
    text = json.dumps({**body, "crc32": _crc(body)}, indent=1, sort_keys=True)
    path = Path(folder) / FILE_NAME
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read(folder: Path, check_files: bool = True) -> Manifest:
    """The manifest in ``folder``; ValueError when it is missing, damaged, of another format or version, or
    (``check_files``) a shard file is missing or differs in size or CRC-32 from what the manifest records."""
    path = Path(folder) / FILE_NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder}: no {FILE_NAME} (not a manifest directory of 'adanns cluster build')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable manifest ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not an adanns cluster manifest")
    if raw.get("version") != VERSION:
        raise ValueError(f"{path}: manifest version {raw.get('version')!r}, this adanns reads version {VERSION}")
    crc = raw.pop("crc32", None)
    if crc != _crc(raw):
        raise ValueError(f"{path}: checksum mismatch (the manifest is damaged or was edited)")
    try:
        shards = [ShardFile(**s) for s in raw["shards"]]
        m = Manifest(raw["name"], raw["kind"], int(raw["dim"]), raw["metric"], dict(raw["params"]), raw["rule"],
                     shards, int(raw["rows"]), dict(raw.get("build", {})))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None
    if [s.shard for s in shards] != list(range(len(shards))) or not shards:
        raise ValueError(f"{path}: shards must be numbered 0..n-1")
    if check_files:
        for s in shards:
            f = Path(folder) / s.file
            if Path(s.file).name != s.file:
                raise ValueError(f"{path}: shard file {s.file!r} must be a plain name inside the manifest directory")
            if not f.is_file():
                raise ValueError(f"{path}: shard {s.shard}: {f} is missing")
            if f.stat().st_size != s.bytes or file_crc32(f) != s.crc32:
                raise ValueError(f"{path}: shard {s.shard}: {f} differs from the manifest (size or CRC-32)")
    return m
