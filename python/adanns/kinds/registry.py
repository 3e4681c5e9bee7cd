"""The table of index kinds. Each kind module registers one `Kind`: its class, how to recognise its
native index in a loaded file, how the service builds it from PUT params, and its bench family. `load()`,
the service's kinds table (server/kinds.py) and `adanns bench` read this table, so adding a kind touches
its own module and one import in kinds/__init__.py."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from .. import _core


@dataclass(frozen=True)
class Param:
    """One build parameter: ``type`` "int", "bool" or "choice" (one of ``choices``; None among them means
    null is allowed); a ``default`` of None is filled in by the kind's ``complete``; ``maximum`` bounds it
    before anything is built (each index allocates per list / per centroid at creation)."""

    type: str
    default: object = None
    maximum: int | None = None
    may_be_zero: bool = False
    choices: tuple = ()


@dataclass(frozen=True)
class Kind:
    name: str  # as the CLI, the service and the bench families spell it
    cls: type
    default_metric: str  # cosine where the kind supports it: a prefix query then ranks like a short embedding
    native: type  # the _core class a loaded file holds
    # The wrapper of a loaded native index, or None when the file is another kind's (kinds sharing one native
    # class are asked in registration order).
    from_native: Callable
    # What the service needs; kinds with ``servable=False`` (raw codes) cannot be served.
    servable: bool = True
    params: dict = field(default_factory=dict)  # name -> Param
    knobs: frozenset = frozenset()  # search knobs besides k
    # (dim, metric, params) -> None: fills the defaults that depend on other values; ValueError names a problem.
    complete: Callable = lambda dim, metric, params: None
    # params -> how many vectors the service buffers before training (None: the kind needs no training),
    # and the fewest it can train on.
    train_size: Callable = lambda params: None
    min_train_size: Callable = lambda params: 1
    new: Callable | None = None  # (dim, metric, params) -> an empty index
    describe: Callable | None = None  # index -> its params, for serving a loaded file
    bench_family: str | None = None  # module under adanns.bench.families
    not_servable_reason: str = ""


_KINDS: list[Kind] = []
_TYPES = {"int": "a positive integer", "bool": "a boolean"}


def register(kind: Kind) -> Kind:
    if any(k.name == kind.name for k in _KINDS):
        raise ValueError(f"kind {kind.name!r} is registered twice")
    _KINDS.append(kind)
    return kind


def kinds() -> list[Kind]:
    return list(_KINDS)


def servable() -> list[Kind]:
    return [k for k in _KINDS if k.servable]


def get(name: str) -> Kind:
    for k in _KINDS:
        if k.name == name:
            return k
    raise KeyError(name)


def kind_of(index) -> Kind:
    """The registered kind of an index object (its exact class)."""
    for k in _KINDS:
        if type(index) is k.cls:
            return k
    raise KeyError(type(index).__name__)


def resolve(name: str, dim: int, metric: str, params: dict) -> dict:
    """The build parameters of kind ``name`` with every default filled in, as the CLI and the service take
    them; ValueError names the first problem (before anything is built)."""
    spec = get(name)
    params = dict(params or {})
    unknown = set(params) - set(spec.params)
    if unknown:
        raise ValueError(f"unknown params for kind {name!r}: {sorted(unknown)}; expected some of {sorted(spec.params)}")
    for key, value in params.items():
        p = spec.params[key]
        if p.type == "bool":
            ok, what = isinstance(value, bool), _TYPES["bool"]
        elif p.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= (0 if p.may_be_zero else 1)
            what = "a non-negative integer" if p.may_be_zero else "a positive integer"
        else:
            ok, what = value in p.choices, "one of " + ", ".join("null" if c is None else repr(c) for c in p.choices)
        if not ok:
            raise ValueError(f"params.{key} must be {what}, got {value!r}")
        if p.maximum is not None and value > p.maximum:
            raise ValueError(f"params.{key} must be <= {p.maximum}, got {value}")
    for key, p in spec.params.items():
        if p.default is not None:
            params.setdefault(key, p.default)
    spec.complete(dim, metric, params)
    need = spec.train_size(params)
    if need is not None:
        params.setdefault("train_size", need)
        floor = spec.min_train_size(params)
        if params["train_size"] < floor:
            raise ValueError(f"params.train_size must be >= {floor} for kind {name!r}, got {params['train_size']}")
    try:
        spec.new(dim, metric, params)  # the constructors' own checks (pq_dim % m, bits <= dim, ...)
    except (ValueError, TypeError) as e:
        raise ValueError(f"params: {e}") from None
    return params


def wrap_native(impl):
    for k in _KINDS:
        if isinstance(impl, k.native):
            obj = k.from_native(impl)
            if obj is not None:
                return obj
    raise ValueError(f"no index kind reads a native {type(impl).__name__}")


def load(path, mmap: bool = False, verify: bool = True):
    """Loads an index written by ``save``, of any kind (a code index is always read into memory, as are PQ
    indexes). With ``mmap`` the vectors stay memory-mapped (not read); ``verify=False`` then also skips their
    checksum. Corrupt or truncated files raise ValueError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no index file at {path!r}")
    obj = wrap_native(_core.load(path, bool(mmap), bool(verify)))
    check = getattr(obj, "_check_frontiers", None)
    if check is not None:
        try:
            check()  # a damaged frontier fails the load, not a later search
        except ValueError as e:
            raise ValueError(f"corrupt index file {path!r}: {e}") from None
    return obj
