"""Service settings, from `adanns serve` flags or ADANNS_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


@dataclass
class Settings:
    data_dir: Path
    api_key: str | None = field(default_factory=lambda: os.environ.get("ADANNS_API_KEY") or None)
    # Requests larger than this are refused with 413 before they are read in full.
    max_body_bytes: int = field(default_factory=lambda: _env_int("ADANNS_MAX_BODY_BYTES", 64 << 20))
    # Threads running native searches and writes; searches use one native thread each, so
    # concurrency comes from concurrent requests.
    workers: int = field(default_factory=lambda: _env_int("ADANNS_WORKERS", max(4, os.cpu_count() or 1)))
    search_threads: int = field(default_factory=lambda: _env_int("ADANNS_SEARCH_THREADS", 1))
    # A snapshot is written after this many logged writes (and on shutdown); the log then restarts.
    snapshot_every: int = field(default_factory=lambda: _env_int("ADANNS_SNAPSHOT_EVERY", 1000))
    max_k: int = 10_000

    def __post_init__(self):
        self.data_dir = Path(self.data_dir)
