"""What the service's routes see in a cluster: a store-like object whose collections forward to shard copies
(Ray Serve deployments of `shard.ShardCopy`), so `adanns.server.create_app` serves the same REST API.

- search: every shard (ids are hashed over shards, so any shard may hold a neighbour), in parallel; the
  per-shard top-k lists merge into one (`sharding.merge_topk`) and the MFLOPs add up. A shard with no
  usable copy is a 503 naming it: never a silently incomplete answer.
- writes: split by owning shard; every copy of an owning shard must be up and in step (same log sequence)
  before anything is written, and a write is acknowledged once every copy has logged it. Upserts with ids
  are idempotent, so a write that failed part-way (503) is retried as is.
- reads go to the copies of a shard that are in step, in turn (replicas for read throughput).
- attributes: a write's are checked here for the whole write against the fields of every shard together, and
  each owning shard logs its rows' values with the types resolved here; filtered and with_payload searches go
  to every shard (with the index's fields, which a shard holding no value of one declares first) and merge.

State the routes read on the event loop (names, info, counts) is cached here and refreshed by every answer a
shard gives, so no route blocks the loop on a remote call; calls to shards run on the worker pool.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import adanns

from ..server import errors, payloads
from ..server.collection import Collection, Config, _check_ids
from ..server.errors import Conflict, Invalid, NotFound, Unavailable
from ..server.rwlock import RWLock
from ..server.store import _check_name
from . import partial
from .sharding import merge_topk, shard_of

log = logging.getLogger("adanns.cluster")
_STATE_RANK = {"ready": 0, "read-only": 1, "failed": 2}
# Seconds between background probes of copies that did not answer, and how long one probe waits.
PROBE_INTERVAL, PROBE_TIMEOUT = 1.0, 5.0


class ShardDown(Exception):
    """A copy did not answer (dead, restarting, timed out)."""


class Shards:
    """Calls to the copies of every shard: ``copies[s][r]`` are Serve deployment handles."""

    def __init__(self, copies: list[list], timeout: float):
        self.copies = copies
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=max(4, 2 * sum(len(c) for c in copies)),
                                       thread_name_prefix="adanns-scatter")
        self._turn = [itertools.count() for _ in copies]

    def __len__(self) -> int:
        return len(self.copies)

    def call(self, s: int, r: int, method: str, *args, timeout: float | None = None):
        """The copy's answer value; the service's ApiError it answered with; ShardDown if it did not answer."""
        try:
            answer = getattr(self.copies[s][r], method).remote(*args).result(timeout_s=timeout or self.timeout)
        except Exception as e:  # noqa: BLE001 - dead actor, timeout, Serve unavailable: all mean "down"
            raise ShardDown(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]) from None
        if "error" in answer:
            cls, detail = answer["error"]
            raise getattr(errors, cls, errors.ApiError)(detail)
        return answer["ok"]

    def call_many(self, calls: list[tuple]) -> list:
        """Runs (s, r, method, *args) calls in parallel; returns each one's value or the exception it raised."""
        futures = [self.pool.submit(self.call, *c) for c in calls]
        out = []
        for f in futures:
            try:
                out.append(f.result())
            except Exception as e:  # noqa: BLE001 - returned, each caller decides
                out.append(e)
        return out

    def next_turn(self, s: int) -> int:
        return next(self._turn[s])


class ShardedStore:
    """Store-like: names, get, create, delete, states, close (see adanns.server.store.Store)."""

    def __init__(self, shards: Shards, snapshot_every: int = 1000):
        self.shards = shards
        self._lock = threading.Lock()
        self._collections: dict[str, ShardedCollection] = {}
        # (shard, copy) -> {name: {"info", "seq", "next_id"}}, or None when the copy has not answered
        self._status: dict[tuple[int, int], dict | None] = {}
        self.refresh()
        self._closed = threading.Event()
        threading.Thread(target=self._probe_down_copies, name="adanns-probe", daemon=True).start()

    def refresh(self) -> None:
        """Asks every copy what it holds (at start-up, and for a copy that failed to answer before)."""
        calls = [(s, r, "status") for s in range(len(self.shards)) for r in range(len(self.shards.copies[s]))]
        for (s, r, _), answer in zip(calls, self.shards.call_many(calls)):
            self._status[(s, r)] = None if isinstance(answer, Exception) else answer
        self._register()

    def _register(self) -> None:
        """Serves every index some copy holds (one that was down at start-up may bring some)."""
        names = set()
        for status in list(self._status.values()):
            names.update(status or {})
        with self._lock:
            for name in sorted(names):
                if name not in self._collections:
                    said = next(st[name] for st in self._status.values() if st and name in st)
                    config = said.get("config") or said["info"]
                    self._collections[name] = ShardedCollection(self, name, config)

    # -------------------------------------------------------------------------------- per copy state
    def note(self, s: int, r: int, name: str, described: dict | None) -> None:
        """Records what copy (s, r) says about index ``name`` (None: the copy holds it no more)."""
        status = self._status.get((s, r))
        if status is None:
            return
        if described is None:
            status.pop(name, None)
        else:
            status[name] = described

    def mark_down(self, s: int, r: int) -> None:
        self._status[(s, r)] = None

    def _probe_down_copies(self) -> None:
        """In the background, asks the copies that did not answer whether they are back (a restarted replica
        has recovered from its log): requests never wait on a copy known to be down."""
        while not self._closed.wait(PROBE_INTERVAL):
            for (s, r), status in list(self._status.items()):
                if status is None:
                    try:
                        self._status[(s, r)] = self.shards.call(s, r, "status", timeout=PROBE_TIMEOUT)
                        log.info("shard %d copy %d answers again", s, r)
                        self._register()
                    except (ShardDown, errors.ApiError):
                        pass

    def in_step(self, s: int, name: str) -> tuple[list[int], list[str]]:
        """(copies of shard s that are up and hold index ``name`` at the highest sequence, problems with the
        others)."""
        seqs, problems = {}, []
        for r in range(len(self.shards.copies[s])):
            status = self._status.get((s, r))
            if status is None:
                problems.append(f"copy {r} is unavailable")
            elif name in status:
                seqs[r] = status[name]["seq"]
            else:  # a create or delete that did not reach every copy: its retry completes it
                problems.append(f"copy {r} does not hold index {name!r} (retry the PUT or DELETE that failed)")
        if not seqs:
            return [], problems
        top = max(seqs.values())
        behind = [r for r, q in seqs.items() if q != top]
        problems += [f"copy {r} is behind (log sequence {seqs[r]} < {top}; copy the folder of an in-step copy "
                     "over it to resync)" for r in behind]
        return [r for r, q in seqs.items() if q == top], problems

    def described(self, s: int, name: str) -> dict | None:
        """What the most advanced copy of shard s last said about ``name``."""
        said = [st[name] for r in range(len(self.shards.copies[s]))
                if (st := self._status.get((s, r))) and name in st]
        return max(said, key=lambda d: d["seq"]) if said else None

    # -------------------------------------------------------------------------------- the Store interface
    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._collections)

    def get(self, name: str) -> "ShardedCollection":
        _check_name(name)
        with self._lock:
            c = self._collections.get(name)
        if c is None:
            raise NotFound(f"no index named {name!r}")
        record = partial.current()
        return c if record is None else c.allowing_partial(record)

    def create(self, name: str, config: Config) -> tuple["ShardedCollection", bool]:
        _check_name(name)
        with self._lock:
            existing = self._collections.get(name)
        if existing is not None and existing.config.as_dict() != config.as_dict():
            raise Conflict(f"index {name!r} exists with a different configuration: {existing.config.as_dict()}")
        answers = self._everywhere("create", name, config.as_dict(), what=f"index {name!r} could not be created")
        created = any(a["created"] for a in answers.values())
        for (s, r), a in answers.items():
            self.note(s, r, name, {k: v for k, v in a.items() if k != "created"})
        with self._lock:
            c = self._collections.setdefault(name, ShardedCollection(self, name, config.as_dict()))
        return c, created

    def delete(self, name: str) -> None:
        c = self.get(name)
        answers = self._everywhere("delete", name, what=f"index {name!r} could not be deleted everywhere",
                                   missing_ok=True)
        for s, r in answers:
            self.note(s, r, name, None)
        with self._lock:
            self._collections.pop(name, None)
        c.deleted = True

    def _everywhere(self, method: str, name: str, *args, what: str, missing_ok: bool = False) -> dict:
        """Runs ``method`` on every copy of every shard; 503 naming the copies that did not answer (a retry
        of create or delete completes it)."""
        calls = [(s, r, method, name, *args) for s in range(len(self.shards))
                 for r in range(len(self.shards.copies[s]))]
        answers, down = {}, []
        for (s, r, *_), a in zip(calls, self.shards.call_many(calls)):
            if isinstance(a, ShardDown):
                self.mark_down(s, r)
                down.append(f"shard {s} copy {r} ({a})")
            elif isinstance(a, NotFound) and missing_ok:
                answers[(s, r)] = None
            elif isinstance(a, Exception):
                raise a
            else:
                answers[(s, r)] = a
        if down:
            raise Unavailable(f"{what}: {'; '.join(down)} did not answer; retry once it is back")
        return answers

    def states(self) -> dict[str, dict]:
        with self._lock:
            collections = dict(self._collections)
        out = {}
        for name, c in sorted(collections.items()):
            info = c.info()
            out[name] = {"state": info["state"], "reason": info["reason"]}
        return out

    def close(self) -> None:
        """The shard copies close their own collections (snapshots) when Serve stops them."""
        self._closed.set()
        self.shards.pool.shutdown(wait=False)


class ShardedCollection:
    """Collection-like (see adanns.server.collection.Collection): the routes call the same methods."""

    def __init__(self, store: ShardedStore, name: str, config: dict):
        self.store, self.shards, self.name = store, store.shards, name
        self.config = Config(config["dim"], config["metric"], config["kind"], config["params"],
                             config.get("attributes") or {})
        self.filters = self.config.kind in payloads.kinds_with_filters()
        self.deleted = False
        self._partial = None  # a request's record when it allows a partial answer (see partial.py)
        # Writes hold it exclusively, searches shared: a search sees a write on every shard or on none (as a
        # single node's collection lock gives), and writes reach the shards in one order.
        self._lock = RWLock()

    def allowing_partial(self, record: dict) -> "ShardedCollection":
        """A view for one request that may leave out unavailable shards, naming them in ``record``."""
        view = copy.copy(self)  # shares the shards, the lock and the state
        view._partial = record
        return view

    # ---------------------------------------------------------------------------------- state
    def _parts(self) -> list[dict | None]:
        return [self.store.described(s, self.name) for s in range(len(self.shards))]

    @property
    def state(self) -> str:
        return self.info()["state"]

    @property
    def reason(self) -> str | None:
        return self.info()["reason"]

    def info(self) -> dict:
        parts = self._parts()
        state, reason = "ready", None
        for s, p in enumerate(parts):
            st, why = ("failed", "no copy answers") if p is None else (p["info"]["state"], p["info"]["reason"])
            if _STATE_RANK[st] > _STATE_RANK[state]:
                state, reason = st, f"shard {s}: {why}"
        base = {"name": self.name, **self.config.as_dict(), "state": state, "reason": reason, "attributes": None}
        infos = [p["info"] for p in parts if p is not None]
        if state == "failed" or any(i["count"] is None for i in infos):
            return {**base, "count": None, "trained": None, "bytes": None}
        return {**base, "count": sum(i["count"] for i in infos), "trained": all(i["trained"] for i in infos),
                "bytes": sum(i["bytes"] for i in infos), "attributes": self.fields() if self.filters else None}

    def fields(self) -> dict:
        """The attribute fields of the index (name -> type): those of every shard together (a field whose
        rows all hash to one shard is still a field of the index, as on a single node)."""
        out = dict(self.config.attributes)
        for p in self._parts():
            if p is not None:
                out.update(p["info"].get("attributes") or {})
        return out

    def stats(self) -> tuple[int, int]:
        info = self.info()
        return info["count"] or 0, info["bytes"] or 0

    def require(self, writing: bool) -> None:
        if self.deleted:
            raise NotFound(f"index {self.name!r} was deleted")
        parts = self._parts()
        for s, p in enumerate(parts):
            if p is None:
                continue  # down: the call to it answers 503 naming it (after a recheck: it may be back)
            st = p["info"]["state"]
            if st == "failed" or (writing and st == "read-only"):
                raise Unavailable(f"index {self.name!r} is {st} on shard {s}: {p['info']['reason']}")

    # The same checks as a single-node collection (they read only self.config and self.name).
    check_queries = Collection.check_queries
    _check_vectors = Collection._check_vectors

    # ---------------------------------------------------------------------------------- reads
    def _reader(self, s: int) -> list[int]:
        """Copies of shard s to try for a read, the next in turn first; 503 naming the shard when none."""
        ready, problems = self.store.in_step(s, self.name)
        if not ready:
            raise Unavailable(f"shard {s} of index {self.name!r} is unavailable: {'; '.join(problems) or 'no copy'}")
        turn = self.shards.next_turn(s) % len(ready)
        return ready[turn:] + ready[:turn]

    def _read(self, s: int, method: str, *args):
        last = None
        for r in self._reader(s):
            try:
                return self.shards.call(s, r, method, self.name, *args)
            except ShardDown as e:
                self.store.mark_down(s, r)
                last = f"copy {r}: {e}"
        raise Unavailable(f"shard {s} of index {self.name!r} is unavailable: {last}")

    def search_checked(self, queries: np.ndarray, k: int, threads: int, **knobs) -> adanns.SearchResult:
        return self._scatter("search", queries, k, threads, knobs)[0]

    def search_with_payload(self, queries: np.ndarray, k: int, threads: int, **knobs
                            ) -> tuple[adanns.SearchResult, list[list[dict | None]]]:
        """`search_checked`, and the attributes of every hit (None at padding), each from the shard that
        found it, read with its search."""
        return self._scatter("search_with_payload", queries, k, threads, knobs)

    def payload(self, id_: int) -> dict | None:
        """The attributes of one id, from its owning shard."""
        self.require(writing=False)
        with self._lock.read():
            return self._read(int(shard_of(np.array([id_]), len(self.shards))[0]), "payload", id_)

    def _holds_nothing(self, s: int) -> bool:
        """Whether shard s holds no vectors of the index (as it last said; writes wait for searches)."""
        said = self.store.described(s, self.name)
        return said is not None and said["info"]["count"] == 0

    def _scatter(self, method: str, queries: np.ndarray, k: int, threads: int, knobs: dict):
        """Runs a search on every shard and merges: (result, payloads per hit, or None without them)."""
        self.require(writing=False)
        parts, failure = [], None
        # A filter names fields that some shard may hold no value of: every shard declares them first.
        types = self.fields() if knobs.get("filter") is not None and self.filters else None
        with self._lock.read():
            futures = [self.shards.pool.submit(self._read, s, method, queries, k, threads, knobs, types)
                       for s in range(len(self.shards))]
            missing, empty = [], []
            for s, f in enumerate(futures):
                try:
                    parts.append(f.result())
                except Unavailable as e:
                    missing.append(s)
                    failure = failure or e
                except Invalid as e:
                    if self._holds_nothing(s):  # a kind that refuses to search while empty (graph): no hits
                        empty.append(e)
                        continue
                    failure = e if failure is None or isinstance(failure, Unavailable) else failure
                except errors.ApiError as e:  # the first problem wins, as a single node reports one
                    failure = e if failure is None or isinstance(failure, Unavailable) else failure
            if not parts and not missing and failure is None:
                failure = empty[0]  # every shard is empty: as a single node answers for an empty index
        if failure is not None and not (self._partial is not None and isinstance(failure, Unavailable) and parts):
            raise failure
        if missing:  # allowed by the request: the answer says which shards it lacks
            self._partial["missing"] = missing
        scores, ids = merge_topk([(p[0], p[1]) for p in parts], k, self.config.metric)
        mflops = np.sum([p[2] for p in parts], axis=0)
        result = adanns.SearchResult(scores, ids, mflops)
        if method != "search_with_payload":
            return result, None
        # An id lives on one shard only, so its payload is the one that shard returned with it.
        by_id = [{} for _ in range(len(ids))]
        for p in parts:
            for row, (hits, rows) in enumerate(zip(p[1].tolist(), p[3])):
                by_id[row].update(zip(hits, rows))
        return result, [[by_id[row][i] if i >= 0 else None for i in hits] for row, hits in enumerate(ids.tolist())]

    def search(self, queries, k, threads, **knobs):
        return self.search_checked(self.check_queries(queries), k, threads, **knobs)

    # ---------------------------------------------------------------------------------- writes
    def _writers(self, owners: list[int]) -> dict[int, list[int]]:
        """Every copy of each owning shard, once all are up and in step; else 503 naming what is not."""
        out = {}
        for s in owners:
            ready, problems = self.store.in_step(s, self.name)
            if problems or not ready:
                raise Unavailable(f"shard {s} of index {self.name!r} cannot take writes: "
                                  f"{'; '.join(problems) or 'no copy holds it'} (nothing was written)")
            out[s] = ready
        return out

    def _write(self, per_shard: dict[int, tuple], method: str) -> None:
        """Runs ``method`` with per-shard arguments on every copy of the owning shards, in parallel."""
        writers = self._writers(sorted(per_shard))
        calls = [(s, r, method, self.name, *per_shard[s]) for s, copies in writers.items() for r in copies]
        down, failure = [], None
        for (s, r, *_), a in zip(calls, self.shards.call_many(calls)):
            if isinstance(a, ShardDown):
                self.store.mark_down(s, r)
                down.append(f"shard {s} copy {r} ({a})")
            elif isinstance(a, Exception):
                failure = failure or a
            else:
                self.store.note(s, r, self.name, a)
        if down:
            raise Unavailable(f"index {self.name!r}: the write did not reach {'; '.join(down)}; it may be applied "
                              "on the other shards: retry it (an upsert with ids is idempotent)")
        if failure is not None:
            raise failure

    def upsert(self, ids: np.ndarray | None, vectors: np.ndarray, attributes: dict | None = None) -> np.ndarray:
        """As a single node's: ``attributes`` (field -> a value per vector) are checked against the index's
        field types for the whole write before any shard is written; each owning shard logs its rows' values
        with the types resolved here, so inferred types are the same on every shard."""
        self.require(writing=True)
        given = ids is not None
        ids, vectors = self._check_vectors(ids if given else np.arange(len(vectors) if np.ndim(vectors) else 0),
                                           vectors)
        if attributes is not None and not self.filters:
            raise Invalid(f"index {self.name!r} is of kind {self.config.kind!r}, which does not store attributes "
                          "(payloads); write the vectors without them")
        with self._lock.write():
            types = None
            if attributes is not None:
                types = payloads.resolve(self.fields(), attributes, len(ids))["types"]
            if not given:  # consecutive ids after the largest in any shard, as a single node assigns them
                first = max(self._read(s, "next_id") for s in range(len(self.shards)))
                if first + len(ids) > np.iinfo(np.int64).max:
                    raise Invalid("default ids would pass 2^63-1: give the ids explicitly")
                ids = np.arange(first, first + len(ids), dtype=np.int64)
            owner = shard_of(ids, len(self.shards))
            per_shard = {}
            for s in np.unique(owner).tolist():
                rows = np.flatnonzero(owner == s)
                columns = None if attributes is None else \
                    {f: [column[i] for i in rows.tolist()] for f, column in attributes.items()}
                per_shard[s] = (ids[rows], vectors[rows], columns, types)
            self._write(per_shard, "upsert")
        return ids

    def remove(self, ids: np.ndarray) -> int:
        self.require(writing=True)
        ids = _check_ids(ids)
        with self._lock.write():
            owner = shard_of(ids, len(self.shards))
            per_shard = {s: (ids[owner == s],) for s in np.unique(owner).tolist()}
            # Checked on every owning shard before any removes: an unknown id leaves the index unchanged.
            self._writers(sorted(per_shard))
            missing = []
            for s, (mine,) in per_shard.items():
                missing += self._read(s, "missing", mine)
            if missing:
                raise NotFound(f"{len(missing)} ids not in index {self.name!r} (first: {sorted(missing)[0]}); "
                               "nothing removed")
            self._write(per_shard, "remove")
        return len(ids)

    def train(self) -> None:
        self.require(writing=True)
        with self._lock.write():
            self._write({s: () for s in range(len(self.shards))}, "train")

    def tune(self, queries, k: int, threads: int, sample=None, seed: int = 0):
        """Measures the kind's default grid on the merged (cluster) searches against the merged exact top-k,
        keeps the Pareto frontier in every shard copy (each snapshots it), so a search by target_recall or
        budget_mflops picks the same settings on every shard — the frontier describes the cluster's answers."""
        from .. import tuning

        self.require(writing=True)
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[0] == 0 or queries.shape[1] == 0:
            raise Invalid(f"queries must be a non-empty (n, d) batch, got shape {queries.shape}")
        queries = self.check_queries(queries)
        if sample is not None and sample < len(queries):
            rows = np.sort(np.random.default_rng(seed).choice(len(queries), size=sample, replace=False))
            queries = queries[rows]
        count = self.info()["count"] or 0
        if count < k:
            raise Invalid(f"index {self.name!r} holds {count} vectors, fewer than k = {k}")
        grid = self._read(0, "tune_grid", k, queries.shape[1])
        exact = [self._read(s, "search_exact", queries, k, threads) for s in range(len(self.shards))]
        gt = merge_topk(exact, k, self.config.metric)[1]
        try:
            points = tuning.measure(lambda q, k, **p: self.search_checked(q, k, threads, **p), queries, gt, k, grid)
        except (ValueError, TypeError) as e:
            raise Invalid(str(e)) from None
        frontier = tuning.Frontier(k, queries.shape[1], queries.shape[0], tuning.frontier_points(points))
        with self._lock.write():
            self._write({s: (frontier.as_dict(),) for s in range(len(self.shards))}, "set_frontier")
        return frontier
