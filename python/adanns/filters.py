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
    def __init__(self, store: AttributeStore):
        self.store = store
        self.n = len(store.ids)
        (self.order, self.sorted_ids), self.postings, self.columns = store.index()

    # A partial result is ("rows", ascending unique rows) or ("mask", bool[n]).
    def sparse_or_mask(self, rows: np.ndarray, is_sorted: bool):
        if len(rows) > self.n * _SPARSE_FRACTION:
            mask = np.zeros(self.n, bool)
            mask[rows] = True
            return ("mask", mask)
        return ("rows", rows if is_sorted else np.sort(rows))

    def as_mask(self, part):
        if part[0] == "mask":
            return part[1]
        mask = np.zeros(self.n, bool)
        mask[part[1]] = True
        return mask

    def all_rows(self):
        return ("mask", np.ones(self.n, bool))

    def leaf(self, expr):
        if not expr:
            return self.all_rows()
        if "has_id" in expr:
            ids = np.asarray(expr["has_id"], dtype=np.int64)
            return ("rows", self.store.rows_of(ids)) if len(ids) else ("rows", np.zeros(0, np.int64))
        field = expr["key"]
        kind = self.store.types[field]
        if "match" in expr:
            values = [expr["match"]["value"]] if "value" in expr["match"] else expr["match"]["any"]
            if kind == "keyword":
                lists = [self.postings[field].get(v) for v in values]
                lists = [p for p in lists if p is not None]
                if not lists:
                    return ("rows", np.zeros(0, np.int64))
                if len(lists) == 1:
                    return self.sparse_or_mask(lists[0], True)
                return self.sparse_or_mask(np.unique(np.concatenate(lists)), True)
            vals, rows = self.columns[field]
            # Rows of equal values are ascending (stable sort) and distinct values are disjoint.
            parts = [rows[np.searchsorted(vals, v, "left"):np.searchsorted(vals, v, "right")]
                     for v in sorted({int(v) for v in values})]
            if not parts:
                return ("rows", np.zeros(0, np.int64))
            if len(parts) == 1:
                return self.sparse_or_mask(parts[0], True)
            return self.sparse_or_mask(np.concatenate(parts), False)
        vals, rows = self.columns[field]
        rng = expr["range"]
        lo, hi = 0, len(vals)
        if "gt" in rng:
            lo = max(lo, np.searchsorted(vals, rng["gt"], "right"))
        if "gte" in rng:
            lo = max(lo, np.searchsorted(vals, rng["gte"], "left"))
        if "lt" in rng:
            hi = min(hi, np.searchsorted(vals, rng["lt"], "left"))
        if "lte" in rng:
            hi = min(hi, np.searchsorted(vals, rng["lte"], "right"))
        return self.sparse_or_mask(rows[lo:max(lo, hi)], False)

    def union(self, parts):
        if all(p[0] == "rows" for p in parts) and sum(len(p[1]) for p in parts) <= self.n * _SPARSE_FRACTION:
            return ("rows", np.unique(np.concatenate([p[1] for p in parts])))
        mask = np.zeros(self.n, bool)
        for p in parts:
            if p[0] == "rows":
                mask[p[1]] = True
            else:
                mask |= p[1]
        return ("mask", mask)

    def intersect(self, parts, excluded=None):
        """Rows in every part and not in ``excluded``."""
        sparse = sorted((p[1] for p in parts if p[0] == "rows"), key=len)
        masks = [p[1] for p in parts if p[0] == "mask"]
        if sparse:
            rows = sparse[0]
            for other in sparse[1:]:
                rows = np.intersect1d(rows, other, assume_unique=True)
            for mask in masks:
                rows = rows[mask[rows]]
            if excluded is not None:
                if excluded[0] == "rows":
                    rows = np.setdiff1d(rows, excluded[1], assume_unique=True)
                else:
                    rows = rows[~excluded[1][rows]]
            return ("rows", rows)
        mask = masks[0].copy() if masks else np.ones(self.n, bool)
        for other in masks[1:]:
            mask &= other
        if excluded is not None:
            mask &= ~self.as_mask(excluded)
        return ("mask", mask)

    def node(self, expr):
        if not any(g in expr for g in _GROUPS):
            return self.leaf(expr)
        parts = [self.node(c) for c in expr.get("must", [])]
        if expr.get("should"):
            parts.append(self.union([self.node(c) for c in expr["should"]]))
        excluded = self.union([self.node(c) for c in expr["must_not"]]) if expr.get("must_not") else None
        return self.intersect(parts, excluded)

    def ids(self, expr) -> np.ndarray:
        _, data = self.node(expr)
        ids = self.store.ids[data]  # in row order: ascending rows or a mask
        return ids if _ascending(self.store) else np.sort(ids)


def _ascending(store: AttributeStore) -> bool:
    """Rows in ascending id order (the common case: ids added in order), so row order is id order."""
    order, _ = store.index()[0]
    cached = getattr(store, "_ascending", None)
    if cached is None or cached[0] is not order:
        cached = (order, bool(len(store.ids) < 2 or np.all(np.diff(store.ids) > 0)))
        store._ascending = cached
    return cached[1]


def compile_filter(expr, store: AttributeStore) -> np.ndarray:
    """The ascending ids (int64) of the rows ``expr`` matches; validates first (ValueError)."""
    validate(expr, store.types)
    return _Compiler(store).ids(expr)
