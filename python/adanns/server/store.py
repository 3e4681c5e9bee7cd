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
from .collection import Collection, Config, _save_npy, fsync_dir, write_json_atomically
from .errors import Conflict, Invalid, NotFound

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
        # Leftovers of a create or delete that a crash interrupted start with '.'.
        for junk in self.data_dir.glob(".*-*"):
            shutil.rmtree(junk, ignore_errors=True)
        for folder in sorted(p for p in self.data_dir.iterdir() if p.is_dir() and _NAME.match(p.name)):
            if (folder / "meta.json").exists():
                self._collections[folder.name] = Collection.open(folder, snapshot_every)
                log.info("opened index %s", folder.name)

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
        with self._lock:
            existing = self._collections.get(name)
            if existing is not None:
                if existing.config.as_dict() != config.as_dict():
                    raise Conflict(f"index {name!r} exists with a different configuration: "
                                   f"{existing.config.as_dict()}")
                return existing, False
            # Built under a hidden name, then renamed: a crash never leaves a half-made index.
            tmp = self.data_dir / f".new-{uuid.uuid4().hex}"
            tmp.mkdir()
            Collection.create(tmp, config, self._snapshot_every).close(snapshot=False)
            folder = self.data_dir / name
            tmp.rename(folder)
            fsync_dir(self.data_dir)
            c = self._collections[name] = Collection.open(folder, self._snapshot_every)
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
        with self._lock:
            if name in self._collections:
                raise Conflict(f"index {name!r} already exists")
            tmp = self.data_dir / f".new-{uuid.uuid4().hex}"
            snapshot = tmp / "snapshot-0"
            snapshot.mkdir(parents=True)
            shutil.copyfile(path, snapshot / "index.adanns")
            _save_npy(snapshot / "ids.npy", index.ids())
            fsync_dir(snapshot)
            write_json_atomically(tmp / "meta.json", {"config": config.as_dict(), "snapshot": "snapshot-0", "seq": 0})
            folder = self.data_dir / name
            tmp.rename(folder)
            fsync_dir(self.data_dir)
            c = self._collections[name] = Collection.open(folder, self._snapshot_every)
            return c

    def delete(self, name: str) -> None:
        c = self.get(name)
        with self._lock:
            self._collections.pop(name, None)
        c.close(snapshot=False)
        trash = self.data_dir / f".deleted-{uuid.uuid4().hex}"
        (self.data_dir / name).rename(trash)
        fsync_dir(self.data_dir)
        shutil.rmtree(trash, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            collections, self._collections = list(self._collections.values()), {}
        for c in collections:
            c.close(snapshot=True)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise Invalid(f"index names must match {NAME_PATTERN}, got {name!r}")
