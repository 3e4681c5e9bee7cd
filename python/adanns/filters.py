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

Compilation: the expression is validated, encoded into a prefix program (opcodes and operands,
int64) and executed by the native attribute index in one call (attribute_index.h), which keeps each
partial result as ascending rows while small and as a bitset otherwise.
"""

from __future__ import annotations

import math
import numbers
import struct

import numpy as np

from .attributes import AttributeStore

_GROUPS = ("must", "should", "must_not")
_RANGE_OPS = ("gt", "gte", "lt", "lte")


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


# Opcodes of the native filter program (cpp/include/adanns/attribute_index.h, FilterOp).
_ALL, _AND, _OR, _NOT, _KEYWORD, _INT_RANGE, _FLOAT_RANGE, _IDS = range(8)
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _float_bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _encode(expr, store: AttributeStore, out: list) -> None:
    """Appends the prefix program of a validated expression to ``out``."""
    if any(g in expr for g in _GROUPS):
        musts, should, nots = expr.get("must", ()), expr.get("should"), expr.get("must_not", ())
        out += (_AND, len(musts) + bool(should) + len(nots))
        for c in musts:
            _encode(c, store, out)
        if should:
            out += (_OR, len(should))
            for c in should:
                _encode(c, store, out)
        for c in nots:
            out.append(_NOT)
            _encode(c, store, out)
        return
    if not expr:
        out.append(_ALL)
        return
    if "has_id" in expr:
        out += (_IDS, len(expr["has_id"]), *expr["has_id"])
        return
    field = expr["key"]
    kind, no = store.types[field], store.field_number(field)
    if "match" in expr:
        match = expr["match"]
        values = [match["value"]] if "value" in match else match["any"]
        if kind == "keyword":
            codes = [c for c in (store.keyword_code(field, v) for v in dict.fromkeys(values)) if c is not None]
            out += (_KEYWORD, no, len(codes), *codes)
        else:  # int / bool equality: one point range per value (one outside int64 matches nothing)
            values = [int(v) for v in values if _INT64_MIN <= v <= _INT64_MAX]
            out += (_OR, len(values))
            for value in values:
                out += (_INT_RANGE, no, int(value), int(value))
        return
    r = expr["range"]
    if kind == "int":  # inclusive integer bounds, clamped to int64 (an empty range stays empty)
        lo, hi = _INT64_MIN, _INT64_MAX
        if "gt" in r:
            lo = max(lo, math.floor(r["gt"]) + 1)
        if "gte" in r:
            lo = max(lo, math.ceil(r["gte"]))
        if "lt" in r:
            hi = min(hi, math.ceil(r["lt"]) - 1)
        if "lte" in r:
            hi = min(hi, math.floor(r["lte"]))
        if lo > _INT64_MAX or hi < _INT64_MIN or lo > hi:
            out += (_OR, 0)
        else:
            out += (_INT_RANGE, no, lo, hi)
        return
    lo, hi = -math.inf, math.inf  # float: strict bounds become the next representable double
    if "gt" in r:
        lo = max(lo, math.nextafter(float(r["gt"]), math.inf))
    if "gte" in r:
        lo = max(lo, float(r["gte"]))
    if "lt" in r:
        hi = min(hi, math.nextafter(float(r["lt"]), -math.inf))
    if "lte" in r:
        hi = min(hi, float(r["lte"]))
    out += (_FLOAT_RANGE, no, _float_bits(lo), _float_bits(hi))


def compile_filter(expr, store: AttributeStore, packed_ok: bool = False) -> np.ndarray:
    """The ascending ids (int64) of the rows ``expr`` matches; validates first (ValueError). With
    ``packed_ok``, a broad result over ids 0..n-1 may come as the packed id bitset (uint8, little bit
    order) the core also takes. The expression is encoded once into a compact program and executed
    natively in one call (attribute_index.h)."""
    validate(expr, store.types)
    program: list = []
    _encode(expr, store, program)
    return store.run(np.asarray(program, dtype=np.int64), packed_ok)
