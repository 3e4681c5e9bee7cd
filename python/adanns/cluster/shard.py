"""One copy of one shard: an ordinary service `Store` (a folder per index, each with its write-ahead log and
snapshots) on the local disk of the node that runs it, driven by the cluster's ingress.

A plain class; `app.py` makes a Ray Serve deployment of it. Serve restarts a copy that dies; the new replica
opens the same folder, so it recovers every acknowledged write from the log. Answers carry the service's
errors as values (``{"error": [class name, detail]}``) rather than exceptions, so the ingress answers them
exactly as `adanns serve` would, whatever Ray does to exceptions on the way.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..server import errors, payloads
from ..server.collection import Config
from ..server.store import Store
from . import manifest as manifest_io

log = logging.getLogger("adanns.cluster")


# Fault-injection hook for the tests: while this file exists in a copy's folder, a (re)starting replica of that
# copy waits (at most two minutes), so a test controls how long the copy stays down.
HOLD_FILE = ".hold_start"


def _hold(path: Path) -> None:
    deadline = time.monotonic() + 120
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _answer(fn):
    def wrapped(self, *args, **kwargs):
        try:
            return {"ok": fn(self, *args, **kwargs)}
        except errors.ApiError as e:
            return {"error": [type(e).__name__, e.detail]}
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


class ShardCopy:
    def __init__(self, data_dir: str, shard: int, copy: int, manifest_dir: str | None = None,
                 snapshot_every: int = 1000):
        self.shard, self.copy = shard, copy
        self.folder = Path(data_dir) / f"shard-{shard}" / f"copy-{copy}"
        _hold(self.folder / HOLD_FILE)
        self.store = Store(self.folder, snapshot_every)
        if manifest_dir is not None:
            m = manifest_io.read(manifest_dir, check_files=False)
            if m.name not in self.store.names():  # first start: the built shard becomes the first snapshot
                self.store.import_file(m.name, m.shard_path(manifest_dir, shard))
                log.info("shard %d copy %d: imported %s", shard, copy, m.shard_path(manifest_dir, shard))

    def _describe(self, name: str) -> dict:
        c = self.store.get(name)
        config = c.config.as_dict() if c.config else None  # the declared attributes, which info() does not show
        return {"info": c.info(), "seq": c._seq, "config": config}

    @staticmethod
    def _declare(c, types: dict | None) -> None:
        """Declares the cluster's field ``types`` that this shard does not hold yet (in memory): rows of a write
        may all hash to other shards, yet a filter on the field, and the field types a later write here infers,
        must be the same on every shard. A write's own types are logged with it (durable); the others are
        declared again by the next write or filtered search that needs them, so a restart loses nothing."""
        if not types or not c.filters or set(types) <= set(payloads.fields(c._attribute_target())):
            return  # the common case: nothing to declare, no exclusive lock taken
        with c.lock.write():
            c.require(writing=False)
            target = c._attribute_target()
            held = payloads.fields(target)
            try:
                payloads.declare(target, {f: t for f, t in types.items() if f not in held})
            except ValueError as e:
                raise errors.Invalid(f"attributes: {e}") from None

    @_answer
    def status(self) -> dict:
        """name -> {"info", "seq"} for every index this copy holds."""
        return {name: self._describe(name) for name in self.store.names()}

    @_answer
    def create(self, name: str, config: dict) -> dict:
        collection, created = self.store.create(name, Config(**config))
        return {**self._describe(name), "created": created}

    @_answer
    def delete(self, name: str) -> None:
        self.store.delete(name)

    @_answer
    def search(self, name: str, queries: np.ndarray, k: int, threads: int, knobs: dict, types: dict | None = None):
        """``types``: the cluster's attribute fields, when the search has a filter (see _declare)."""
        c = self.store.get(name)
        if knobs.get("filter") is not None:
            self._declare(c, types)
        res = c.search_checked(queries, k, threads, **knobs)
        return res.scores, res.ids, res.mflops

    @_answer
    def search_with_payload(self, name: str, queries: np.ndarray, k: int, threads: int, knobs: dict,
                            types: dict | None = None):
        """`search`, and the attributes of every hit (None at padding)."""
        c = self.store.get(name)
        if knobs.get("filter") is not None:
            self._declare(c, types)
        res, rows = c.search_with_payload(queries, k, threads, **knobs)
        return res.scores, res.ids, res.mflops, rows

    @_answer
    def payload(self, name: str, id_: int):
        return self.store.get(name).payload(id_)

    @_answer
    def missing(self, name: str, ids: np.ndarray) -> list:
        """The ids this copy does not hold (checked before a removal touches any shard)."""
        c = self.store.get(name)
        c.require(writing=True)
        return [i for i in ids.tolist() if i not in c._ids]

    @_answer
    def next_id(self, name: str) -> int:
        return self.store.get(name)._next_id

    @_answer
    def upsert(self, name: str, ids: np.ndarray, vectors: np.ndarray, attributes: dict | None = None,
               types: dict | None = None) -> dict:
        """``attributes``: this shard's rows of the write's columns; ``types``: the field types the ingress
        resolved for the whole write (declared first, so that every shard stores and logs the same types)."""
        c = self.store.get(name)
        if attributes is not None:
            self._declare(c, types)
        c.upsert(ids, vectors, attributes)
        return self._describe(name)

    @_answer
    def remove(self, name: str, ids: np.ndarray) -> dict:
        self.store.get(name).remove(ids)
        return self._describe(name)

    @_answer
    def train(self, name: str) -> dict:
        self.store.get(name).train()
        return self._describe(name)

    # ------------------------------------------------------------------ tuning a sharded index (see sharded_store)
    def _trained(self, name: str):
        c = self.store.get(name)
        c.require(writing=False)
        if not hasattr(c._index, "tune"):
            raise errors.Invalid(f"index {name!r} is of kind {c.config.kind!r}, which has no tuner")
        if c._buffer_active:
            raise errors.Invalid(f"index {name!r} is not trained yet on shard {self.shard}: its searches are "
                                 "exact, nothing to tune")
        return c

    @_answer
    def tune_grid(self, name: str, k: int, query_dim: int) -> list:
        """The kind's default grid of search settings (the same on every shard: it depends on the parameters)."""
        return self._trained(name)._index.default_grid(k, query_dim)

    @_answer
    def search_exact(self, name: str, queries: np.ndarray, k: int, threads: int):
        """The exact top-k of this shard's rows (the ground truth of a tuning run)."""
        c = self._trained(name)
        with c.lock.read():
            res = c._index.search(queries, k=k, threads=threads, **c._index._exact_params(queries.shape[1], k))
        return res.scores, res.ids

    @_answer
    def set_frontier(self, name: str, frontier: dict) -> dict:
        """Keeps the cluster's measured frontier in this shard's index and snapshots at once (as a single-node
        tune does), so searches by target_recall / budget_mflops choose the same settings on every shard."""
        from .. import tuning

        c = self._trained(name)
        f = tuning.Frontier.from_dict(frontier)
        with c.lock.write():
            c.require(writing=True)
            previous = c._index._user_meta()
            c._index._set_user_meta(tuning.meta_with_frontiers(previous, {**c._index.frontiers(), f.k: f}))
            try:
                c._snapshot()
            except Exception as e:  # not durable: do not serve a frontier a restart would not have
                c._index._set_user_meta(previous)
                raise errors.Unavailable(f"index {name!r}: the tuned snapshot of shard {self.shard} could not be "
                                         f"written ({e}); retry the tune") from None
        return self._describe(name)

    def check_health(self) -> None:
        """Serve's health check: the store answers."""
        self.store.names()

    def __del__(self):
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
