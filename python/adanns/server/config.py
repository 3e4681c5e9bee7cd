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
    api_key: str | None = field(default_factory=lambda: os.environ.get("ADANNS_API_KEY"))
    # Requests larger than this are refused with 413 before they are read in full.
    max_body_bytes: int = field(default_factory=lambda: _env_int("ADANNS_MAX_BODY_BYTES", 64 << 20))
    # Threads running writes, tuning, searches of batches too large to merge and other blocking work off the
    # event loop.
    workers: int = field(default_factory=lambda: _env_int("ADANNS_WORKERS", max(4, os.cpu_count() or 1)))
    # Threads running searches: one per core but the event loop's. More would only split the same cores,
    # while fewer threads merge more of the searches that wait for them into one native call, which costs
    # less per query (see batcher.py; measured in benchmarks/service_load.py). Each search uses
    # `search_threads` native threads. Batches too large to merge run on the `workers` pool instead.
    search_workers: int = field(default_factory=lambda: _env_int("ADANNS_SEARCH_WORKERS",
                                                                 max(1, (os.cpu_count() or 1) - 1)))
    search_threads: int = field(default_factory=lambda: _env_int("ADANNS_SEARCH_THREADS", 1))
    # A snapshot is written after this many logged writes (and on shutdown); the log then restarts.
    snapshot_every: int = field(default_factory=lambda: _env_int("ADANNS_SNAPSHOT_EVERY", 1000))
    max_k: int = 10_000
    # Work one request may ask for: queries per search, result slots (queries x k) per search, vectors per write.
    max_queries: int = field(default_factory=lambda: _env_int("ADANNS_MAX_QUERIES", 10_000))
    max_result_slots: int = field(default_factory=lambda: _env_int("ADANNS_MAX_RESULT_SLOTS", 100_000))
    max_write_vectors: int = field(default_factory=lambda: _env_int("ADANNS_MAX_WRITE_VECTORS", 100_000))
    # Seconds a client has to send a whole request body (slow senders get 408 and lose the connection).
    body_timeout: float = field(default_factory=lambda: float(os.environ.get("ADANNS_BODY_TIMEOUT") or 60))
    # Serve /docs, /redoc and /openapi.json without the API key.
    public_docs: bool = False

    def __post_init__(self):
        self.data_dir = Path(self.data_dir)
        self.check()

    def check(self) -> None:
        """A setting that would silently weaken the service is a start-up error."""
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty: give a non-empty --api-key / ADANNS_API_KEY, or none at all "
                             "to serve without authentication")
        for name in ("max_body_bytes", "workers", "search_workers", "search_threads", "snapshot_every", "max_queries",
                     "max_result_slots", "max_write_vectors"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.body_timeout > 0:
            raise ValueError(f"body_timeout must be > 0, got {self.body_timeout}")
