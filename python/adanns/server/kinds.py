"""The index kinds the service serves, as the kinds table (adanns/kinds/registry.py) describes them: their
parameters (checked, defaults filled), how to build an empty index of each, and which search knobs each
accepts.

Every kind but ``flat`` and ``graph`` learns from data (k-means, PQ codebooks, a binarizer), so it collects
its first ``train_size`` vectors in an exact buffer and trains on them (or on ``POST .../train``).
"""

from __future__ import annotations

from adanns import kinds as registry

from .errors import Invalid

KINDS = tuple(k.name for k in registry.servable())
# Search knobs each kind accepts besides k (a knob given to a kind without it is a 422).
KNOBS = {k.name: set(k.knobs) for k in registry.servable()}
_TYPES = {"int": "a positive integer", "bool": "a boolean", "itq": "null or \"itq\""}


def resolve(dim: int, metric: str, kind: str, params: dict) -> dict:
    """The kind's parameters with defaults filled in; Invalid names the first problem."""
    if kind not in KINDS:
        raise Invalid(f"unknown kind {kind!r}; expected one of {list(KINDS)}")
    spec = registry.get(kind)
    params = dict(params or {})
    unknown = set(params) - set(spec.params)
    if unknown:
        raise Invalid(f"unknown params for kind {kind!r}: {sorted(unknown)}; expected some of {sorted(spec.params)}")
    for key, value in params.items():
        p = spec.params[key]
        if p.type == "bool":
            ok, what = isinstance(value, bool), _TYPES["bool"]
        elif p.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= (0 if p.may_be_zero else 1)
            what = "a non-negative integer" if p.may_be_zero else "a positive integer"
        else:
            ok, what = value is None or value == "itq", _TYPES["itq"]
        if not ok:
            raise Invalid(f"params.{key} must be {what}, got {value!r}")
        if p.maximum is not None and value > p.maximum:
            raise Invalid(f"params.{key} must be <= {p.maximum}, got {value}")
    for key, p in spec.params.items():
        if p.default is not None:
            params.setdefault(key, p.default)
    try:
        spec.complete(dim, metric, params)
    except ValueError as e:
        raise Invalid(str(e)) from None
    need = spec.train_size(params)
    if need is not None:
        params.setdefault("train_size", need)
        floor = spec.min_train_size(params)
        if params["train_size"] < floor:
            raise Invalid(f"params.train_size must be >= {floor} for kind {kind!r}, got {params['train_size']}")
    try:
        new_index(dim, metric, kind, params)  # the constructors' own checks (pq_dim % m, bits <= dim, ...)
    except (ValueError, TypeError) as e:
        raise Invalid(f"params: {e}") from None
    return params


def min_train_size(kind: str, params: dict) -> int:
    """The fewest vectors training can work with (one per centroid)."""
    return registry.get(kind).min_train_size(params)


def new_index(dim: int, metric: str, kind: str, p: dict):
    """An empty index of the kind (untrained unless it needs no training)."""
    return registry.get(kind).new(dim, metric, p)


def describe_file(index) -> tuple[str, dict]:
    """(kind, params) of an index loaded from a file, for serving it; Invalid when it cannot be served."""
    try:
        spec = registry.kind_of(index)
    except KeyError:
        raise Invalid(f"a {type(index).__name__} cannot be served") from None
    if not spec.servable:
        raise Invalid(spec.not_servable_reason)
    return spec.name, spec.describe(index)
