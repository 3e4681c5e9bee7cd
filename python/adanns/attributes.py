"""Attributes per vector (a payload of typed fields) and the indexes a filter is compiled with.

Every id the index holds has a row here, in the order ids were added (rows without a value for a
field are "missing": no condition on that field matches them). Field types: ``keyword`` (one or
several strings per row), ``int``, ``float``, ``bool``; inferred from the first values given or
declared with :meth:`AttributeStore.declare`.

The indexes filters run on are native (cpp/include/adanns/attribute_index.h) and updated in place
on every add, remove and upsert: a keyword field keeps a posting per value, as ascending row
numbers or, for a value held by more than 1/32 of the rows, as a bitset (no larger than the list
then; roaring's array/bitmap choice per posting, without the dependency or a conversion to the
bitset the search takes); a numeric field keeps its values sorted (a main run and a small tail
that absorbs adds), so a range is a few binary searches. The Python side keeps the values per row
for :meth:`AttributeStore.get` and saving.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _core

TYPES = ("keyword", "int", "float", "bool")
META_KEY = "attributes"
FORMAT, VERSION = "adanns-attributes", 1


def infer_type(values) -> str:
    """The field type of a column of values (the first non-missing value decides)."""
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None and arr.dtype.kind in "biuf":
        return {"b": "bool", "i": "int", "u": "int", "f": "float"}[arr.dtype.kind]
    for value in values:
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            return "bool"
        if isinstance(value, numbers.Integral):
            return "int"
        if isinstance(value, numbers.Real):
            return "float"
        if isinstance(value, str) or isinstance(value, (list, tuple)):
            return "keyword"
        raise TypeError(f"cannot infer a field type from a value of type {type(value).__name__}")
    raise ValueError("cannot infer a field type from a column with no values; declare(field, type) first")


def _check_value(field: str, kind: str, value, row: int):
    """The value as stored (keyword: a tuple of strings), or raise."""
    if value is None:
        return None
    where = f"attribute {field!r} row {row}"
    if kind == "keyword":
        values = (value,) if isinstance(value, str) else value
        if not isinstance(values, (list, tuple)) or not all(isinstance(s, str) for s in values):
            raise TypeError(f"{where}: keyword values must be a string or a list of strings, got {value!r}")
        return tuple(values)
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where}: bool field takes True/False, got {value!r}")
        return bool(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {kind} field takes numbers, got {value!r}")
    if kind == "int":
        if not isinstance(value, numbers.Integral):
            if float(value).is_integer():
                return int(value)
            raise TypeError(f"{where}: int field takes integers, got {value!r}")
        if not -(2 ** 63) <= int(value) < 2 ** 63:
            raise ValueError(f"{where}: {value} does not fit in int64")
        return int(value)
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{where}: float values must be finite, got {value}")
    return value


_KIND_CODES = {"keyword": 0, "int": 1, "bool": 1, "float": 2}  # the native AttributeKind (bool as int 0/1)
_COMPACT_MIN = 1024  # dead rows tolerated before a rebuild is considered


class AttributeStore:
    """The values per row (for :meth:`get` and saving) and the native indexes filters run on
    (``_core.AttributeIndex``: postings and sorted columns, updated in place on every write).

    Rows live in slots in the order they were added; a removed row leaves a dead slot behind until
    dead slots outnumber live ones, when both sides are rebuilt from the live rows (amortised O(1)
    per removal)."""

    def __init__(self, ids=()):
        self.types: dict[str, str] = {}
        self.columns: dict[str, list] = {}  # field -> value per slot (None: missing; dead slots included)
        self._codes: dict[str, dict] = {}  # keyword field -> {string: code}
        self._slot_ids: list = []
        self._live: list = []  # per slot
        self._dead = 0
        self._native = _core.AttributeIndex()
        self._field_no: dict[str, int] = {}
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids):
            self._append_slots(ids)

    @property
    def ids(self) -> np.ndarray:
        """The ids held, in the order they were added."""
        return np.asarray([i for i, alive in zip(self._slot_ids, self._live) if alive], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._slot_ids) - self._dead

    # ---- schema and writes
    def declare(self, field: str, kind: str) -> None:
        if not isinstance(field, str) or not field:
            raise TypeError(f"field names must be non-empty strings, got {field!r}")
        if kind not in TYPES:
            raise ValueError(f"unknown field type {kind!r}; expected one of {', '.join(TYPES)}")
        if field in self.types and self.types[field] != kind:
            raise ValueError(f"field {field!r} is already declared as {self.types[field]}, not {kind}")
        if field not in self.types:
            self.types[field] = kind
            self.columns[field] = [None] * len(self._slot_ids)
            self._field_no[field] = len(self._field_no)
            self._native.declare(self._field_no[field], _KIND_CODES[kind])
            if kind == "keyword":
                self._codes[field] = {}

    def prepare(self, attributes, n: int) -> tuple[dict, dict]:
        """Checks ``attributes`` for ``n`` new rows without changing anything; returns (new field
        types, {field: stored values})."""
        if attributes is None:
            return {}, {}
        if not isinstance(attributes, dict):
            raise TypeError(f"attributes must be a dict of field -> values, got {type(attributes).__name__}")
        new_types, out = {}, {}
        for field, values in attributes.items():
            if not isinstance(field, str) or not field:
                raise TypeError(f"field names must be non-empty strings, got {field!r}")
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
                raise TypeError(f"attribute {field!r} must be a list or array with a value per vector")
            if len(values) != n:
                raise ValueError(f"attribute {field!r} has {len(values)} values for {n} vectors")
            kind = self.types.get(field) or infer_type(values)
            if field not in self.types:
                new_types[field] = kind
            items = values.tolist() if isinstance(values, np.ndarray) else values
            out[field] = [_check_value(field, kind, value, i) for i, value in enumerate(items)]
        return new_types, out

    def append(self, ids: np.ndarray, prepared: tuple[dict, dict]) -> None:
        new_types, values = prepared
        for field, kind in new_types.items():
            self.declare(field, kind)
        ids = np.asarray(ids, dtype=np.int64)
        first = self._append_slots(ids)
        for field, column in self.columns.items():
            given = values.get(field)
            column.extend(given if given is not None else [None] * len(ids))
            if given is not None:
                self._index_values(field, first, given)

    def _append_slots(self, ids: np.ndarray) -> int:
        first = self._native.append_rows(ids)
        self._slot_ids.extend(ids.tolist())
        self._live.extend([True] * len(ids))
        return first

    def _index_values(self, field: str, first: int, values: list) -> None:
        """Hands the native index one field's values for the rows from slot ``first`` on."""
        kind, no = self.types[field], self._field_no[field]
        if kind == "keyword":
            codes, offsets, lookup = [], [0], self._codes[field]
            for row in values:
                if row is not None:
                    for s in row:
                        code = lookup.get(s)
                        if code is None:
                            code = lookup[s] = len(lookup)
                        codes.append(code)
                offsets.append(len(codes))
            self._native.set_keywords(no, first, np.asarray(offsets, np.int64), np.asarray(codes, np.int32))
            return
        present = np.asarray([x is not None for x in values], np.uint8)
        dense = [0 if x is None else x for x in values]
        if kind == "float":
            self._native.set_floats(no, first, np.asarray(dense, np.float64), present)
        else:
            self._native.set_ints(no, first, np.asarray(dense, np.int64), present)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        for s in self._native.slots_of(ids).tolist():
            if s >= 0 and self._live[s]:
                self._live[s] = False
                self._dead += 1
        self._native.remove(ids)
        if self._dead > max(_COMPACT_MIN, len(self)):
            self._rebuild()

    def _rebuild(self) -> None:
        """Drops the dead slots: a fresh store over the live rows, same fields and order."""
        keep = [s for s, alive in enumerate(self._live) if alive]
        fresh = AttributeStore(np.zeros(0, np.int64))
        for field, kind in self.types.items():
            fresh.declare(field, kind)
        fresh.append(np.asarray([self._slot_ids[s] for s in keep], np.int64),
                     ({}, {f: [c[s] for s in keep] for f, c in self.columns.items()}))
        self.__dict__.update(fresh.__dict__)

    def get(self, ids) -> list[dict]:
        """{field: value} for each id (missing fields left out; keyword: a list). KeyError for an
        id the index does not hold."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        slots = self._native.slots_of(ids)
        if len(slots) and slots.min() < 0:
            raise KeyError(f"id {int(ids[slots < 0][0])} is not in the index")
        out = []
        for s in slots.tolist():
            row = {}
            for field, column in self.columns.items():
                value = column[s]
                if value is not None:
                    row[field] = list(value) if self.types[field] == "keyword" else value
            out.append(row)
        return out

    # ---- what the filter compiler needs (filters.py)
    def field_number(self, field: str) -> int:
        return self._field_no[field]

    def keyword_code(self, field: str, value: str):
        """The code of a keyword value, or None when no row ever held it."""
        return self._codes[field].get(value)

    def run(self, program: np.ndarray, packed_ok: bool) -> np.ndarray:
        return self._native.compile(program, packed_ok)

    # ---- persistence in the index's JSON user metadata
    def as_dict(self) -> dict:
        live = [s for s, alive in enumerate(self._live) if alive]
        return {"format": FORMAT, "version": VERSION, "types": dict(self.types),
                "ids": [self._slot_ids[s] for s in live],
                "columns": {f: [list(c[s]) if isinstance(c[s], tuple) else c[s] for s in live]
                            for f, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, entry, index_ids: np.ndarray) -> "AttributeStore":
        """The store saved by :meth:`as_dict`; ValueError when it is malformed or does not match the
        ids the index holds."""
        def bad(why):
            return ValueError(f"corrupt index file: attribute metadata {why}")
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            raise bad("has an unknown format")
        if entry.get("version") != VERSION:
            raise bad(f"has version {entry.get('version')!r}; this adanns reads version {VERSION}")
        types, ids, columns = entry.get("types"), entry.get("ids"), entry.get("columns")
        if not isinstance(types, dict) or not isinstance(ids, list) or not isinstance(columns, dict):
            raise bad("lacks types, ids or columns")
        if set(types) != set(columns) or any(t not in TYPES for t in types.values()):
            raise bad("has fields without a known type")
        try:
            ids = np.asarray(ids, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise bad("has non-integer ids") from None
        if ids.ndim != 1 or len(ids) != len(index_ids) or not np.array_equal(np.sort(ids), np.sort(index_ids)):
            raise bad("does not cover exactly the ids the index holds")
        store = cls(np.zeros(0, np.int64))
        values = {}
        for field, kind in types.items():
            column = columns[field]
            if not isinstance(column, list) or len(column) != len(ids):
                raise bad(f"column {field!r} does not have a value per row")
            store.declare(field, kind)
            try:
                values[field] = [_check_value(field, kind, x, i) for i, x in enumerate(column)]
            except (TypeError, ValueError) as e:
                raise bad(f"column {field!r}: {e}") from None
        store.append(ids, ({}, values))
        return store
