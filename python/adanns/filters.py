"""Filter expressions (the grammar of Qdrant's payload filters) and their compilation to the sorted
ids a filtered search may return.

    {"must": [cond, ...], "should": [cond, ...], "must_not": [cond, ...]}   (nested freely)
    cond: {"key": f, "match": {"value": v}}       keyword / int / bool equality
          {"key": f, "match": {"any": [v, ...]}}  equal to any of the values
          {"key": f, "range": {"gt"|"gte"|"lt"|"lte": x, ...}}  int / float fields
          {"has_id": [id, ...]}
          or a nested {"must"/"should"/"must_not": ...} object

``must``: every condition holds; ``should``: at least one (when given); ``must_not``: none holds. A
row without a value for a field matches no condition on that field. :func:`validate` checks an
expression against the field types (ValueError naming the problem) before anything runs.

Compilation keeps each partial result sparse (ascending rows) while it is small and as a boolean
mask over the rows otherwise, so a selective filter costs about the size of its postings, not the
number of rows.
"""

from __future__ import annotations

import numbers

import numpy as np

from .attributes import AttributeStore

_GROUPS = ("must", "should", "must_not")
_RANGE_OPS = ("gt", "gte", "lt", "lte")
_SPARSE_FRACTION = 1 / 16  # results above this share of the rows are kept as masks


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _check_match_value(field: str, kind: str, value, where: str) -> None:
    ok = {"keyword": lambda x: isinstance(x, str),
          "int": lambda x: isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_)),
          "bool": lambda x: isinstance(x, (bool, np.bool_)),
          "float": lambda x: False}[kind]
    if kind == "float":
        raise ValueError(f"{where}: field {field!r} is float; match it with a range, not match")
    if not ok(value):
        raise ValueError(f"{where}: field {field!r} is {kind}, got match value {value!r}")


def validate(expr, types: dict, where: str = "filter") -> None:
    """Raises ValueError unless ``expr`` is a well-formed filter over fields of the given types."""
    if not isinstance(expr, dict):
        raise ValueError(f"{where} must be an object, got {type(expr).__name__}")
    if any(g in expr for g in _GROUPS):
        extra = set(expr) - set(_GROUPS)
        if extra:
            raise ValueError(f"{where}: unexpected keys {sorted(extra)} next to must/should/must_not")
        for group in _GROUPS:
            if group in expr:
                conds = expr[group]
                if not isinstance(conds, list):
                    raise ValueError(f"{where}.{group} must be a list of conditions")
                for i, cond in enumerate(conds):
                    validate(cond, types, f"{where}.{group}[{i}]")
        return
    if not expr:
        return  # {}: every row
    if "has_id" in expr:
        if set(expr) != {"has_id"}:
            raise ValueError(f"{where}: has_id takes no other keys, got {sorted(expr)}")
        ids = expr["has_id"]
        if not isinstance(ids, list) or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool)
                                                and -(2 ** 63) <= i < 2 ** 63 for i in ids):
            raise ValueError(f"{where}: has_id must be a list of integer ids (int64)")
        return
    if "key" not in expr:
        raise ValueError(f"{where}: a condition needs must/should/must_not, has_id, or key with match/range; "
                         f"got keys {sorted(expr)}")
    field = expr["key"]
    if not isinstance(field, str):
        raise ValueError(f"{where}: key must be a field name, got {field!r}")
    if field not in types:
        known = ", ".join(sorted(types)) or "none"
        raise ValueError(f"{where}: unknown field {field!r} (fields: {known})")
    kind = types[field]
    ops = set(expr) - {"key"}
    if ops == {"match"}:
        match = expr["match"]
        if not isinstance(match, dict) or len(match) != 1 or not ({"value", "any"} & set(match)):
            raise ValueError(f"{where}: match must be {{'value': v}} or {{'any': [v, ...]}}, got {match!r}")
        if "value" in match:
            _check_match_value(field, kind, match["value"], where)
        else:
            if not isinstance(match["any"], list):
                raise ValueError(f"{where}: match.any must be a list of values")
            for v in match["any"]:
                _check_match_value(field, kind, v, where)
    elif ops == {"range"}:
        rng = expr["range"]
        if kind not in ("int", "float"):
            raise ValueError(f"{where}: range needs an int or float field; {field!r} is {kind}")
        if not isinstance(rng, dict) or not rng or set(rng) - set(_RANGE_OPS):
            raise ValueError(f"{where}: range must be an object of {'/'.join(_RANGE_OPS)} bounds, got {rng!r}")
        for op, x in rng.items():
            if not _is_number(x) or not np.isfinite(float(x)):
                raise ValueError(f"{where}: range.{op} must be a finite number, got {x!r}")
    else:
        raise ValueError(f"{where}: a condition on key {field!r} needs exactly one of match or range, "
                         f"got {sorted(ops)}")


class _Compiler:
    """Evaluates an expression smallest-first: in a conjunction the most selective condition is
    materialised as ascending rows and the others only test those rows (a range compares the rows'
    values, a keyword looks the rows up in its postings), so a selective filter costs about the size
    of its smallest condition; broad ones are boolean masks over the rows."""

    def __init__(self, store: AttributeStore):
        self.store = store
        self.n = len(store.ids)
        self.small = max(1, int(self.n * _SPARSE_FRACTION))
        (self.order, self.sorted_ids), self.postings, self.columns = store.index()

    # ---- leaves: estimate, materialise (("rows", ascending) or ("mask", bool[n])), test given rows
    def _lists(self, expr) -> list:
        values = [expr["match"]["value"]] if "value" in expr["match"] else expr["match"]["any"]
        field = expr["key"]
        if self.store.types[field] == "keyword":
            post = self.postings[field]
            return [post[v] for v in dict.fromkeys(values) if v in post]
        vals, rows = self.columns[field][:2]
        out = []
        for v in sorted({int(v) for v in values}):  # equal values: ascending rows (stable sort), disjoint
            lo, hi = np.searchsorted(vals, v, "left"), np.searchsorted(vals, v, "right")
            if hi > lo:
                out.append(rows[lo:hi])
        return out

    def _range(self, expr) -> tuple[int, int]:
        vals = self.columns[expr["key"]][0]
        r = expr["range"]
        lo, hi = 0, len(vals)
        if "gt" in r:
            lo = max(lo, int(np.searchsorted(vals, r["gt"], "right")))
        if "gte" in r:
            lo = max(lo, int(np.searchsorted(vals, r["gte"], "left")))
        if "lt" in r:
            hi = min(hi, int(np.searchsorted(vals, r["lt"], "left")))
        if "lte" in r:
            hi = min(hi, int(np.searchsorted(vals, r["lte"], "right")))
        return lo, max(lo, hi)

    def estimate(self, expr) -> int:
        if _is_group(expr):
            musts = [self.estimate(c) for c in expr.get("must", [])]
            should = sum(self.estimate(c) for c in expr["should"]) if expr.get("should") else self.n
            return min(musts + [should, self.n])
        if not expr:
            return self.n
        if "has_id" in expr:
            return len(expr["has_id"])
        if "match" in expr:
            return sum(len(p) for p in self._lists(expr))
        lo, hi = self._range(expr)
        return hi - lo

    def materialise(self, expr):
        if _is_group(expr):
            return self.group(expr)
        if not expr:
            return ("mask", np.ones(self.n, bool))
        if "has_id" in expr:
            return ("rows", self.store.rows_of(np.asarray(expr["has_id"], dtype=np.int64)))
        if "match" in expr:
            lists = self._lists(expr)
            total = sum(len(p) for p in lists)
            if total > self.small:
                mask = np.zeros(self.n, bool)
                for p in lists:
                    mask[p] = True
                return ("mask", mask)
            if len(lists) <= 1:
                return ("rows", lists[0] if lists else np.zeros(0, np.int64))
            return ("rows", np.unique(np.concatenate(lists)))
        lo, hi = self._range(expr)
        if hi - lo <= self.small:
            return ("rows", np.sort(self.columns[expr["key"]][1][lo:hi]))
        return ("mask", self.range_test(expr, None))

    def range_test(self, expr, rows):
        """Which of ``rows`` (None: every row) hold a value in the range."""
        _, _, dense, present = self.columns[expr["key"]]
        values, ok = (dense, present.copy()) if rows is None else (dense[rows], present[rows])
        r = expr["range"]
        if "gt" in r:
            ok &= values > r["gt"]
        if "gte" in r:
            ok &= values >= r["gte"]
        if "lt" in r:
            ok &= values < r["lt"]
        if "lte" in r:
            ok &= values <= r["lte"]
        return ok

    def test(self, expr, rows: np.ndarray) -> np.ndarray:
        """Which of the ascending ``rows`` the expression matches."""
        if not _is_group(expr) and expr:
            if "range" in expr:
                return self.range_test(expr, rows)
            if "match" in expr:
                hit = np.zeros(len(rows), bool)
                for p in self._lists(expr):
                    pos = np.minimum(np.searchsorted(p, rows), len(p) - 1)
                    hit |= p[pos] == rows
                return hit
        kind, data = self.materialise(expr)
        if kind == "mask":
            return data[rows]
        if len(data) == 0:
            return np.zeros(len(rows), bool)
        pos = np.minimum(np.searchsorted(data, rows), len(data) - 1)
        return data[pos] == rows

    # ---- groups
    def union(self, parts):
        if all(p[0] == "rows" for p in parts) and sum(len(p[1]) for p in parts) <= self.small:
            return ("rows", np.unique(np.concatenate([p[1] for p in parts])))
        mask = np.zeros(self.n, bool)
        for kind, data in parts:
            if kind == "rows":
                mask[data] = True
            else:
                mask |= data
        return ("mask", mask)

    def group(self, expr):
        musts = list(expr.get("must", []))
        if expr.get("should"):
            musts.append({"should": expr["should"]})  # a nested any-of, one more conjunct
        nots = expr.get("must_not", [])
        if len(musts) == 1 and len(musts[0]) == 1 and musts[0].get("should") and not nots:
            return self.union([self.materialise(c) for c in musts[0]["should"]])
        if not musts:
            musts = [{}]
        estimates = [self.estimate(c) for c in musts]
        first = int(np.argmin(estimates))
        if estimates[first] <= self.small:
            kind, rows = self.materialise(musts[first])
            if kind == "mask":
                rows = np.flatnonzero(rows)
            for i, c in enumerate(musts):
                if i != first and len(rows):
                    rows = rows[self.test(c, rows)]
            for c in nots:
                if len(rows):
                    rows = rows[~self.test(c, rows)]
            return ("rows", rows)
        mask = np.ones(self.n, bool)
        for c in musts:
            kind, data = self.materialise(c)
            if kind == "mask":
                mask &= data
            else:
                keep = np.zeros(self.n, bool)
                keep[data] = True
                mask &= keep
        for c in nots:
            kind, data = self.materialise(c)
            if kind == "mask":
                mask &= ~data
            else:
                mask[data] = False
        return ("mask", mask)

    def ids(self, expr, packed_ok: bool = False) -> np.ndarray:
        kind, data = self.materialise(expr)
        if kind == "mask":
            if packed_ok and _identity(self.store):  # row r holds id r: the mask is the id bitset
                return np.packbits(data, bitorder="little")
            data = np.flatnonzero(data)  # far cheaper than boolean indexing of a dense mask
        ids = self.store.ids[data]  # in row order
        return ids if _ascending(self.store) else np.sort(ids)


def _is_group(expr) -> bool:
    return any(g in expr for g in _GROUPS)


def _identity(store: AttributeStore) -> bool:
    """Row r holds id r (ids 0..n-1 added in order, none removed): the common case."""
    n = len(store.ids)
    return n == 0 or (_ascending(store) and store.ids[0] == 0 and store.ids[-1] == n - 1)


def _ascending(store: AttributeStore) -> bool:
    """Rows in ascending id order (the common case: ids added in order), so row order is id order."""
    order, _ = store.index()[0]
    cached = getattr(store, "_ascending", None)
    if cached is None or cached[0] is not order:
        cached = (order, bool(len(store.ids) < 2 or np.all(np.diff(store.ids) > 0)))
        store._ascending = cached
    return cached[1]


def compile_filter(expr, store: AttributeStore, packed_ok: bool = False) -> np.ndarray:
    """The ascending ids (int64) of the rows ``expr`` matches; validates first (ValueError). With
    ``packed_ok``, a broad result over ids 0..n-1 comes as the packed id bitset (uint8, little bit
    order) the core also takes."""
    validate(expr, store.types)
    return _Compiler(store).ids(expr, packed_ok)
