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


def resolve(dim: int, metric: str, kind: str, params: dict) -> dict:
    """The kind's parameters with defaults filled in; Invalid names the first problem."""
    if kind not in KINDS:
        raise Invalid(f"unknown kind {kind!r}; expected one of {list(KINDS)}")
    try:
        return registry.resolve(kind, dim, metric, params)
    except ValueError as e:
        raise Invalid(str(e)) from None


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
