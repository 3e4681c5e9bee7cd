"""What every float-vector index kind shares: size, dimension, metric, ids, remove, save (with the
attributes), attributes and filters, and compute-aware search (tunable.py)."""

from __future__ import annotations

import json
import os

import numpy as np

from .. import _validate as v
from .. import tuning
from ..attributes import META_KEY as ATTRIBUTES_KEY
from ..attributes import AttributeStore
from ..filters import compile_filter
from ..tunable import Tunable


def native(name: str) -> property:
    """A read-only attribute of the native index, exposed as is."""
    return property(lambda self: getattr(self._impl, name))


class Attributed:
    """Attributes (payloads) and filters for an index kind (attributes.py, filters.py): the kind gives
    ``_held_ids()`` (the ids it holds) and ``_next_default_id()`` (the first id an add without ids assigns)."""

    # ---- attributes (payloads) and filters: attributes.py, filters.py
    _attrs = None

    def _store(self) -> AttributeStore:
        if self._attrs is None:
            self._attrs = AttributeStore(self._held_ids())
        return self._attrs

    def upsert(self, x, ids, attributes=None, **add_kwargs) -> None:
        """Adds the vectors, replacing those (and their attributes) whose ids the index already holds."""
        x = v.as_vectors(x, "x", dim=self.dim)
        ids = v.as_ids(ids, x.shape[0])
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique in an upsert batch")
        if attributes is not None:
            self._store().prepare(attributes, x.shape[0])  # reject bad attributes before removing anything
        present = ids[np.isin(ids, self._held_ids())]
        if len(present):
            self.remove(present)
        self.add(x, ids, attributes=attributes, **add_kwargs)

    def declare(self, field: str, type: str) -> None:
        """Declares an attribute field: "keyword", "int", "float" or "bool" (else inferred on first use)."""
        self._store().declare(field, type)

    def attributes(self, ids) -> list:
        """{field: value} per id (fields without a value left out). KeyError for an unknown id."""
        return self._store().get(v.as_ids(ids))

    def attribute_types(self) -> dict:
        return dict(self._store().types)

    def compile_filter(self, filter) -> np.ndarray:
        """The ascending ids a filter expression matches (filters.py); ValueError when it is malformed."""
        return compile_filter(filter, self._store())

    def _add_with_attributes(self, x: np.ndarray, ids, attributes, core_add) -> np.ndarray | None:
        """Checks attributes and resolves default ids before the core add, records them after it, so
        a rejected batch changes nothing."""
        if attributes is None and self._attrs is None:
            core_add(ids)
            return None
        store = self._store()
        prepared = store.prepare(attributes, x.shape[0])
        if ids is None:
            first = self._next_default_id()
            ids = np.arange(first, first + x.shape[0], dtype=np.int64)
        core_add(ids)
        store.append(ids, prepared)
        return ids

    def _search_per_query_filters(self, q, k, filters: list, knobs: dict):
        """``search`` with a list of filters, one per query (None: no filter): the queries that share an
        expression run as one batch, so a batch with a few distinct filters costs a few calls."""
        from .result import SearchResult

        q = v.as_vectors(q, "queries", max_dim=self.dim)
        if len(filters) != q.shape[0]:
            raise ValueError(f"a list of filters needs one per query: {len(filters)} filters for {q.shape[0]} queries")
        groups: dict = {}
        for i, f in enumerate(filters):
            if f is not None and not isinstance(f, dict):
                raise ValueError(f"filter[{i}] must be an object (or None), got {type(f).__name__}")
            groups.setdefault(repr(f), []).append(i)
        parts = [(rows, self.search(q[rows], k, filter=filters[rows[0]], **knobs)) for rows in groups.values()]
        first = parts[0][1]
        scores = np.empty((q.shape[0],) + first.scores.shape[1:], first.scores.dtype)
        ids = np.empty((q.shape[0],) + first.ids.shape[1:], first.ids.dtype)
        mflops = np.empty(q.shape[0], first.mflops.dtype)
        for rows, res in parts:
            scores[rows], ids[rows], mflops[rows] = res.scores, res.ids, res.mflops
        return SearchResult(scores, ids, mflops)

    def _allowed(self, filter):
        """What the core's search takes for a filter: the allowed ids, or their packed bitset."""
        return None if filter is None else compile_filter(filter, self._store(), packed_ok=True)


class VectorIndex(Attributed, Tunable):
    """What every index shares: size, dimension, metric, add/remove, save, compute-aware search
    (tunable.py)."""

    _impl: object

    dim = native("dim")
    metric = native("metric")

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def nbytes(self) -> int:
        """Bytes held by the index (vectors, ids, centroids)."""
        return self._impl.bytes()

    def __len__(self) -> int:
        return self._impl.size()

    def ids(self) -> np.ndarray:
        """Every id the index holds (int64), in storage order."""
        return self._impl.ids()

    def __contains__(self, id_) -> bool:
        return bool(np.isin(id_, self._impl.ids()).all())

    def _held_ids(self) -> np.ndarray:
        return self._impl.ids()

    def _next_default_id(self) -> int:
        return self._impl.next_id()

    def remove(self, ids) -> int:
        """Removes the given ids; returns how many. An unknown id raises KeyError and nothing is removed."""
        ids = v.as_ids(ids)
        n = self._impl.remove(ids)
        if self._attrs is not None:
            self._attrs.remove(ids)
        return n

    def save(self, path) -> None:
        """Writes the index to ``path`` (atomically: temporary file, fsync, rename), with its attributes."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot save to {path!r}: folder {folder!r} does not exist")
        if self._attrs is None:
            self._impl.save(path)
            return
        # The attributes go into the file's metadata only: in memory the metadata stays small, since
        # tuned searches read it on every call.
        raw = self._user_meta()
        meta = tuning.read_meta(raw)
        meta[ATTRIBUTES_KEY] = self._attrs.as_dict()
        self._set_user_meta(json.dumps(meta, separators=(",", ":")).encode("utf-8"))
        try:
            self._impl.save(path)
        finally:
            self._set_user_meta(raw)

    @classmethod
    def _wrap(cls, impl):
        obj = cls.__new__(cls)
        obj._impl = impl
        try:
            meta = tuning.read_meta(impl.user_meta())
        except ValueError:  # foreign (non-JSON) metadata: it holds no attributes
            meta = {}
        entry = meta.pop(ATTRIBUTES_KEY, None)
        obj._attrs = None if entry is None else AttributeStore.from_dict(entry, impl.ids())
        if entry is not None:  # kept in memory as a store, not as metadata (see save)
            impl.set_user_meta(json.dumps(meta, separators=(",", ":")).encode("utf-8") if meta else b"")
        return obj

