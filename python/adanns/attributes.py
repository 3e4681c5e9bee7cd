"""Attributes per vector (a payload of typed fields) and the indexes a filter is compiled with.

Every id the index holds has a row here, in the order ids were added (rows without a value for a
field are "missing": no condition on that field matches them). Field types: ``keyword`` (one or
several strings per row), ``int``, ``float``, ``bool``; inferred from the first values given or
declared with :meth:`AttributeStore.declare`.

Indexes, rebuilt lazily on the first filter after a write (O(rows)): a keyword field keeps a posting
list per value (ascending rows); a numeric field keeps its rows sorted by value, so a range is two
``np.searchsorted`` calls and a slice. Plain numpy arrays rather than a bitmap library: postings and
sorted columns already give the sparse results directly, and numpy's boolean ops cover the dense
ones; pyroaring would add a dependency and a conversion to the id list the core takes.
"""

from __future__ import annotations

import numbers

import numpy as np

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


class AttributeStore:
    def __init__(self, ids=()):
        self.types: dict[str, str] = {}
        self.ids = np.asarray(ids, dtype=np.int64).copy()  # row -> id
        self.columns: dict[str, list] = {}  # field -> value per row (None: missing)
        self._index = None  # (row_of_id, postings, sorted columns), built lazily

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
            self.columns[field] = [None] * len(self.ids)

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
        for field, column in self.columns.items():
            column.extend(values.get(field, [None] * len(ids)))
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        self._index = None

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.ids, ids)
        rows = np.flatnonzero(keep)
        self.ids = self.ids[keep]
        for field in self.columns:
            column = self.columns[field]
            self.columns[field] = [column[r] for r in rows]
        self._index = None

    def get(self, ids) -> list[dict]:
        """{field: value} for each id (missing fields left out; keyword: a list). KeyError for an
        id the index does not hold."""
        rows = self.rows_of(np.asarray(ids, dtype=np.int64).ravel(), strict=True)
        out = []
        for r in rows:
            row = {}
            for field, column in self.columns.items():
                value = column[r]
                if value is not None:
                    row[field] = list(value) if self.types[field] == "keyword" else value
            out.append(row)
        return out

    # ---- lookups for the filter compiler
    def rows_of(self, ids: np.ndarray, strict: bool = False) -> np.ndarray:
        """Rows of the given ids (ascending by row when not strict; unknown ids dropped, or KeyError)."""
        order, sorted_ids = self.index()[0]
        pos = np.searchsorted(sorted_ids, ids)
        pos_c = np.minimum(pos, max(len(sorted_ids) - 1, 0))
        found = (pos < len(sorted_ids)) & (sorted_ids[pos_c] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
        if strict:
            if not found.all():
                raise KeyError(f"id {int(ids[~found][0])} is not in the index")
            return order[pos_c]
        return np.unique(order[pos_c[found]])

    def index(self):
        """((rows by id, sorted ids), {field: {value: rows}}, {field: (sorted values, their rows, value per
        row, present per row)}), rebuilt after a write."""
        if self._index is None:
            order = np.argsort(self.ids, kind="stable")
            postings, sorted_cols = {}, {}
            for field, column in self.columns.items():
                if self.types[field] == "keyword":
                    lists: dict[str, list] = {}
                    for r, values in enumerate(column):
                        if values is not None:
                            for s in set(values):
                                lists.setdefault(s, []).append(r)
                    postings[field] = {s: np.asarray(r, dtype=np.int64) for s, r in lists.items()}
                else:
                    rows = np.asarray([r for r, x in enumerate(column) if x is not None], dtype=np.int64)
                    dtype = {"int": np.int64, "float": np.float64, "bool": np.int64}[self.types[field]]
                    vals = np.asarray([column[r] for r in rows], dtype=dtype)
                    by_value = np.argsort(vals, kind="stable")
                    dense = np.zeros(len(column), dtype)  # value per row, for testing candidate rows
                    dense[rows] = vals
                    present = np.zeros(len(column), bool)
                    present[rows] = True
                    sorted_cols[field] = (vals[by_value], rows[by_value], dense, present)
            self._index = ((order, self.ids[order]), postings, sorted_cols)
        return self._index

    # ---- persistence in the index's JSON user metadata
    def as_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "types": dict(self.types), "ids": self.ids.tolist(),
                "columns": {f: [list(x) if isinstance(x, tuple) else x for x in c] for f, c in self.columns.items()}}

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
        store = cls(ids)
        for field, kind in types.items():
            column = columns[field]
            if not isinstance(column, list) or len(column) != len(ids):
                raise bad(f"column {field!r} does not have a value per row")
            store.declare(field, kind)
            try:
                store.columns[field] = [_check_value(field, kind, x, i) for i, x in enumerate(column)]
            except (TypeError, ValueError) as e:
                raise bad(f"column {field!r}: {e}") from None
        return store
