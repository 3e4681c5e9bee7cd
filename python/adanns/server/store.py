"""The data directory: one folder per index (see collection.py), opened once when the service starts."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from pathlib import Path

import adanns

from . import kinds
from .collection import Collection, Config, Damaged, _save_npy, create_empty_log, file_digest, fsync_dir, write_meta
from .errors import Conflict, Invalid, NotFound, storage_error

log = logging.getLogger("adanns.server")

# Names become folder names: this pattern admits no separator, no '.', so no path traversal.
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_NAME = re.compile(NAME_PATTERN)


class Store:
    def __init__(self, data_dir: Path, snapshot_every: int = 1000):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._snapshot_every = snapshot_every
        self._lock = threading.Lock()  # guards the dict of collections, not their contents
        self._collections: dict[str, Collection] = {}
        # Creating, importing and deleting a name are serialised per name (other names go on meanwhile).
        self._name_locks: dict[str, threading.Lock] = {}
        # Leftovers of a create or delete that a crash interrupted start with '.'.
        for junk in self.data_dir.glob(".*-*"):
            shutil.rmtree(junk, ignore_errors=True)
        for folder in sorted(p for p in self.data_dir.iterdir() if p.is_dir() and _NAME.match(p.name)):
            if not any(folder.iterdir()):
                continue
            self._collections[folder.name] = _open_or_fail(folder, snapshot_every)

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._collections)

    def get(self, name: str) -> Collection:
        _check_name(name)
        with self._lock:
            c = self._collections.get(name)
        if c is None:
            raise NotFound(f"no index named {name!r}")
        return c

    def create(self, name: str, config: Config) -> tuple[Collection, bool]:
        """Returns (collection, created). Re-creating with the same configuration is a no-op."""
        _check_name(name)
        with self._name_lock(name):
            existing = self._collections.get(name)
            if existing is not None:
                if existing.state == "failed":
                    raise Conflict(f"index {name!r} exists but failed to load ({existing.reason}); repair it "
                                   "(`adanns repair`) or delete it first")
                if existing.config.as_dict() != config.as_dict():
                    raise Conflict(f"index {name!r} exists with a different configuration: "
                                   f"{existing.config.as_dict()}")
                return existing, False
            # Built under a hidden name, then renamed: a crash never leaves a half-made index.
            tmp = self.data_dir / f".new-{uuid.uuid4().hex}"
            folder = self.data_dir / name
            try:
                tmp.mkdir()
                Collection.create(tmp, config, self._snapshot_every).close(snapshot=False)
                tmp.rename(folder)
                fsync_dir(self.data_dir)
            except OSError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise storage_error(f"index {name!r} could not be created", e) from None
            c = Collection.open(folder, self._snapshot_every)
            with self._lock:
                self._collections[name] = c
            return c, True

    def import_file(self, name: str, path: Path) -> Collection:
        """Serves an index file written by ``adanns build`` (or ``index.save``) under ``name``: it becomes
        the collection's first snapshot, with an empty log."""
        _check_name(name)
        index = adanns.load(path)
        try:
            kind, params = kinds.describe_file(index)
        except Invalid as e:
            raise Invalid(f"{path}: {e.detail}") from None
        if not index.is_trained:
            raise Invalid(f"{path}: an untrained {kind} index cannot be served; build it with vectors first")
        config = Config.resolve(index.dim, index.metric, kind, params)
        with self._name_lock(name):
            if name in self._collections:
                raise Conflict(f"index {name!r} already exists")
            tmp = self.data_dir / f".new-{uuid.uuid4().hex}"
            snapshot = tmp / "snapshot-0-import"
            folder = self.data_dir / name
            try:
                snapshot.mkdir(parents=True)
                index.save(snapshot / "index.adanns")  # written and fsynced by the core
                _save_npy(snapshot / "ids.npy", index.ids())
                fsync_dir(snapshot)
                files = {f.name: file_digest(f) for f in sorted(snapshot.iterdir())}
                create_empty_log(tmp)
                write_meta(tmp, config, snapshot.name, 0, files)
                tmp.rename(folder)
                fsync_dir(self.data_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            c = Collection.open(folder, self._snapshot_every)
            with self._lock:
                self._collections[name] = c
            return c

    def delete(self, name: str) -> None:
        _check_name(name)
        with self._name_lock(name):
            with self._lock:
                c = self._collections.pop(name, None)
            if c is None:
                raise NotFound(f"no index named {name!r}")
            c.close(snapshot=False)
            trash = self.data_dir / f".deleted-{uuid.uuid4().hex}"
            (self.data_dir / name).rename(trash)
            fsync_dir(self.data_dir)
        shutil.rmtree(trash, ignore_errors=True)

    def states(self) -> dict[str, dict]:
        """name -> {"state", "reason"} for every index."""
        with self._lock:
            collections = dict(self._collections)
        return {name: {"state": c.state, "reason": c.reason} for name, c in sorted(collections.items())}

    def close(self) -> None:
        with self._lock:
            collections, self._collections = list(self._collections.values()), {}
        for c in collections:
            c.close(snapshot=True)


def _open_or_fail(folder: Path, snapshot_every: int) -> Collection:
    """The collection in ``folder``; one whose files cannot be loaded is kept in the failed state (the
    service starts, the other indexes serve) with its files untouched."""
    try:
        c = Collection.open(folder, snapshot_every)
        log.info("opened index %s", folder.name)
        return c
    except Damaged as e:
        reason = str(e)
    except Exception as e:  # noqa: BLE001 - whatever breaks one index must not stop the others
        reason = f"{type(e).__name__}: {e}"
    log.error("index %s failed to load and is not served: %s (files left untouched; see `adanns repair`)",
              folder.name, reason)
    return Collection.failed(folder, reason, snapshot_every)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise Invalid(f"index names must match {NAME_PATTERN}, got {name!r}")
