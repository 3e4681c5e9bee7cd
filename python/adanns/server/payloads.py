"""Attributes (payloads) in the service: checking them before a write is logged, the form the log and
the snapshots carry, and moving them between the exact buffer and the trained index.

A write's attributes are checked against the field types the index holds (declared at creation or
inferred from earlier writes) and logged *resolved*: ``{"types": {field: type}, "columns": {field:
[value per vector]}}`` with every value in its stored form, so replaying the record after a crash
declares exactly the types the first application did, whatever the values look like.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np

from .. import kinds as registry
from ..attributes import TYPES, AttributeStore
from .errors import Invalid

SNAPSHOT_FILE = "attributes.json"  # beside buffer.npy in the snapshot of an index not trained yet
_FORMAT, _VERSION = "adanns-service-attributes", 1


def supports_filters(index) -> bool:
    """Whether an index (or an index class) stores attributes and takes filters: its add and search
    accept them."""
    if not hasattr(index, "declare"):
        return False
    try:
        return ("filter" in inspect.signature(index.search).parameters
                and "attributes" in inspect.signature(index.add).parameters)
    except (TypeError, ValueError):
        return False


def kinds_with_filters() -> list[str]:
    """The servable kinds whose indexes store attributes and take filters."""
    return [k.name for k in registry.servable() if supports_filters(k.cls)]


def fields(index) -> dict:
    """The attribute fields of ``index`` (name -> type), without giving an index that has none an
    attribute store: once it has one, every write keeps its attribute indexes in step, which an index
    used without attributes should not pay for."""
    return index.attribute_types() if getattr(index, "_attrs", None) is not None else {}


def check_declared(attributes) -> dict:
    """The ``attributes`` of a PUT body (field -> type), checked."""
    if not isinstance(attributes, dict):
        raise Invalid(f"attributes must map field names to types, got {type(attributes).__name__}")
    for field, kind in attributes.items():
        if not isinstance(field, str) or not field:
            raise Invalid(f"attributes: field names must be non-empty strings, got {field!r}")
        if kind not in TYPES:
            raise Invalid(f"attributes.{field}: unknown type {kind!r}; expected one of {', '.join(TYPES)}")
    return dict(attributes)


def columns_from_payload(payload: list, n: int) -> dict:
    """Per-vector payload objects (None: no attributes) as columns {field: [value per vector]}."""
    if len(payload) != n:
        raise Invalid(f"payload has {len(payload)} entries for {n} vectors")
    fields: dict[str, None] = {}
    for i, row in enumerate(payload):
        if row is None:
            continue
        if not isinstance(row, dict):
            raise Invalid(f"payload.{i}: must be an object of field -> value (or null), got {type(row).__name__}")
        fields.update(dict.fromkeys(row))
    return {f: [None if row is None else row.get(f) for row in payload] for f in fields}


def resolve(types: dict, columns: dict, n: int) -> dict:
    """The log form of a write's attribute ``columns`` for ``n`` vectors, checked against the index's field
    ``types`` without changing anything; Invalid names the first problem."""
    scratch = AttributeStore()
    for field, kind in types.items():
        scratch.declare(field, kind)
    try:
        new_types, values = scratch.prepare(columns, n)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an integer beyond float in a float field
        raise Invalid(f"attributes: {e}") from None
    return {"types": {f: types.get(f) or new_types[f] for f in values},
            "columns": {f: [list(x) if isinstance(x, tuple) else x for x in column] for f, column in values.items()}}


def add(index, vectors: np.ndarray, ids: np.ndarray, logged: dict | None, **add_kwargs) -> None:
    """Adds vectors with their logged attributes (None: none, so rows of an index with attributes get
    none: an upsert replaces the payload)."""
    if logged is None:
        index.add(vectors, ids, **add_kwargs)
        return
    for field, kind in logged["types"].items():
        index.declare(field, kind)
    index.add(vectors, ids, attributes=logged["columns"], **add_kwargs)


def read(index, ids: np.ndarray) -> dict | None:
    """The attributes of ``ids`` in ``index`` in log form (None when the index has no fields)."""
    types = fields(index)
    if not types:
        return None
    rows = index.attributes(ids) if len(ids) else []
    return {"types": types, "columns": {f: [row.get(f) for row in rows] for f in types}}


def save(path: Path, index, ids: np.ndarray) -> bool:
    """Writes the attributes of ``ids`` (the buffer's rows, in ``ids`` order) to ``path``; False when there
    are none. The caller fsyncs and checksums it with the other snapshot files."""
    logged = read(index, ids)
    if logged is None:
        return False
    with open(path, "w") as f:
        json.dump({"format": _FORMAT, "version": _VERSION, **logged}, f, separators=(",", ":"), allow_nan=False)
    return True


def load(path: Path, n: int) -> dict:
    """The log form saved by `save` for ``n`` rows; ValueError when the file is not one."""
    entry = json.loads(path.read_bytes())
    if not isinstance(entry, dict) or entry.get("format") != _FORMAT or entry.get("version") != _VERSION:
        raise ValueError(f"{path.name} is not a version {_VERSION} attributes file")
    types, columns = entry.get("types"), entry.get("columns")
    if not isinstance(types, dict) or not isinstance(columns, dict) or set(types) != set(columns) \
            or any(not isinstance(c, list) or len(c) != n for c in columns.values()):
        raise ValueError(f"{path.name} does not hold a column per field with a value per buffered vector")
    return {"types": types, "columns": columns}


MAX_NESTING = 32
_INT64 = (-(2 ** 63), 2 ** 63)


def check_filter(expr) -> None:
    """What the grammar's own checks (filters.py) leave to the service: groups nested deeper than
    MAX_NESTING (checking and compiling recurse) and integers beyond int64 anywhere (no field holds one);
    Invalid names the place."""
    stack = [(expr, "filter", 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, int) and not _INT64[0] <= node < _INT64[1]:
            raise Invalid(f"{where}: an integer of {node.bit_length()} bits, beyond int64")
        if isinstance(node, dict):
            if any(g in node for g in ("must", "should", "must_not")):
                depth += 1
                if depth > MAX_NESTING:
                    raise Invalid(f"{where}: the filter nests groups more than {MAX_NESTING} levels deep")
            stack.extend((v, f"{where}.{k}", depth) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]", depth) for i, v in enumerate(node))


def declare(index, types: dict) -> None:
    """Declares ``types`` on ``index`` (ValueError when a field is already held with another type)."""
    for field, kind in types.items():
        index.declare(field, kind)
