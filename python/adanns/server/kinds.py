"""The index kinds the service serves: their parameters (checked, defaults filled), how to build an
empty index of each, and which search knobs each accepts.

Every kind but ``flat`` and ``graph`` learns from data (k-means, PQ codebooks, a binarizer), so it collects
its first ``train_size`` vectors in an exact buffer and trains on them (or on ``POST .../train``).
"""

from __future__ import annotations

import adanns

from .errors import Invalid

# name -> (type, default); a default of None is filled in by `resolve` from the other values.
_INT, _BOOL = "a non-negative integer", "a boolean"
PARAMS: dict[str, dict[str, tuple]] = {
    "flat": {},
    "ivf": {"nlist": (_INT, 256), "cluster_dim": (_INT, None), "seed": (_INT, 0), "niter": (_INT, 20),
            "train_size": (_INT, None)},
    "opq": {"m": (_INT, 32), "pq_dim": (_INT, None), "opq": (_BOOL, True), "nbits": (_INT, 8),
            "store_vectors": (_BOOL, True), "seed": (_INT, 0), "train_size": (_INT, None)},
    "ivfopq": {"nlist": (_INT, 256), "cluster_dim": (_INT, None), "m": (_INT, 32), "pq_dim": (_INT, None),
               "opq": (_BOOL, True), "nbits": (_INT, 8), "residual": (_BOOL, True), "store_vectors": (_BOOL, True),
               "seed": (_INT, 0), "niter": (_INT, 20), "train_size": (_INT, None)},
    "binary": {"bits": (_INT, None), "rotation": ("null or \"itq\"", None), "center": (_BOOL, True),
               "seed": (_INT, 0), "train_size": (_INT, None)},
    "graph": {"M": (_INT, 32), "ef_construction": (_INT, 200), "graph_dim": (_INT, None), "seed": (_INT, 0)},
}
KINDS = tuple(PARAMS)
_MAY_BE_ZERO = {"seed", "niter"}
# Upper bounds, checked before anything is built: each index allocates per list / per centroid at creation,
# so an unchecked nlist of 10^8 would pin gigabytes on one PUT. Generous for one machine (faiss guides
# suggest nlist ~ 4-16 sqrt(n): 2^18 lists suit billions of vectors).
MAX_PARAM = {"nlist": 1 << 18, "m": 4096, "nbits": 8, "bits": 65536, "train_size": 1 << 24, "niter": 1000,
             "seed": (1 << 63) - 1, "cluster_dim": 65536, "pq_dim": 65536, "M": 256, "ef_construction": 4096,
             "graph_dim": 65536}

# Search knobs each kind accepts besides k (a knob given to a kind without it is a 422).
KNOBS = {
    "flat": {"search_dim", "rerank_dim", "rerank_k"},
    "ivf": {"nprobe", "search_dim", "rerank_dim", "rerank_k"},
    "opq": {"rerank_dim", "rerank_k"},
    "ivfopq": {"nprobe", "rerank_dim", "rerank_k"},
    "binary": {"rerank_dim", "rerank_k"},
    "graph": {"ef", "rerank_dim", "rerank_k"},
}


def resolve(dim: int, metric: str, kind: str, params: dict) -> dict:
    """The kind's parameters with defaults filled in; Invalid names the first problem."""
    if kind not in PARAMS:
        raise Invalid(f"unknown kind {kind!r}; expected one of {list(KINDS)}")
    spec = PARAMS[kind]
    params = dict(params or {})
    if kind == "flat" and params:
        raise Invalid(f"kind 'flat' takes no params, got {sorted(params)}")
    unknown = set(params) - set(spec)
    if unknown:
        raise Invalid(f"unknown params for kind {kind!r}: {sorted(unknown)}; expected some of {sorted(spec)}")
    for key, value in params.items():
        kind_of = spec[key][0]
        if kind_of is _BOOL:
            ok = isinstance(value, bool)
        elif kind_of is _INT:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= (0 if key in _MAY_BE_ZERO else 1)
            kind_of = "a non-negative integer" if key in _MAY_BE_ZERO else "a positive integer"
        else:
            ok = value is None or value == "itq"
        if not ok:
            raise Invalid(f"params.{key} must be {kind_of}, got {value!r}")
        if kind_of != _BOOL and isinstance(value, int) and value > MAX_PARAM.get(key, value):
            raise Invalid(f"params.{key} must be <= {MAX_PARAM[key]}, got {value}")
    for key, (_, default) in spec.items():
        if default is not None:
            params.setdefault(key, default)
    if kind in ("ivf", "ivfopq"):
        params.setdefault("cluster_dim", dim)
        if params["cluster_dim"] > dim:
            raise Invalid(f"params.cluster_dim must be <= dim ({dim}), got {params['cluster_dim']}")
    if kind in ("opq", "ivfopq"):
        if metric not in ("ip", "l2"):
            raise Invalid(f"kind {kind!r} supports metrics 'ip' and 'l2', got {metric!r}")
        params.setdefault("pq_dim", dim)
    if kind == "graph":
        params.setdefault("graph_dim", dim)
    if kind == "binary":
        if metric != "ip":
            raise Invalid(f"kind 'binary' re-scores by inner product: metric must be 'ip', got {metric!r}")
        params.setdefault("bits", dim - dim % 8)
        params.setdefault("rotation", None)
    # Enough points per centroid for k-means to place them well: ~40 per IVF list and per PQ centroid;
    # a binarizer needs a mean (and an ITQ rotation, which wants more).
    need = {"ivf": 40 * params.get("nlist", 1),
            "opq": 40 * (1 << params.get("nbits", 8)),
            "ivfopq": 40 * max(params.get("nlist", 1), 1 << params.get("nbits", 8)),
            "binary": 10_000 if params.get("rotation") else 1_000}.get(kind)
    if need is not None:
        params.setdefault("train_size", need)
        floor = min_train_size(kind, params)
        if params["train_size"] < floor:
            raise Invalid(f"params.train_size must be >= {floor} for kind {kind!r}, got {params['train_size']}")
    try:
        new_index(dim, metric, kind, params)  # the constructors' own checks (pq_dim % m, bits <= dim, ...)
    except (ValueError, TypeError) as e:
        raise Invalid(f"params: {e}") from None
    return params


def min_train_size(kind: str, params: dict) -> int:
    """The fewest vectors training can work with (one per centroid)."""
    if kind == "ivf":
        return params["nlist"]
    if kind == "opq":
        return 1 << params["nbits"]
    if kind == "ivfopq":
        return max(params["nlist"], 1 << params["nbits"])
    return 1


def new_index(dim: int, metric: str, kind: str, p: dict):
    """An empty index of the kind (untrained unless flat)."""
    if kind == "flat":
        return adanns.FlatIndex(dim, metric=metric)
    if kind == "ivf":
        return adanns.IVFIndex(dim, nlist=p["nlist"], metric=metric, cluster_dim=p["cluster_dim"], seed=p["seed"],
                               niter=p["niter"])
    if kind == "opq":
        return adanns.OPQIndex(dim, m=p["m"], pq_dim=p["pq_dim"], metric=metric, opq=p["opq"], nbits=p["nbits"],
                               store_vectors=p["store_vectors"], seed=p["seed"])
    if kind == "ivfopq":
        return adanns.IVFOPQIndex(dim, nlist=p["nlist"], cluster_dim=p["cluster_dim"], m=p["m"], pq_dim=p["pq_dim"],
                                  metric=metric, opq=p["opq"], nbits=p["nbits"], residual=p["residual"],
                                  store_vectors=p["store_vectors"], seed=p["seed"], niter=p["niter"])
    if kind == "graph":
        return adanns.GraphIndex(dim, graph_dim=p["graph_dim"], M=p["M"], ef_construction=p["ef_construction"],
                                 metric=metric, seed=p["seed"])
    return adanns.BinarizedIndex(dim, bits=p["bits"], rotation=p["rotation"], center=p["center"], seed=p["seed"])


def describe_file(index) -> tuple[str, dict]:
    """(kind, params) of an index loaded from a file, for serving it; Invalid when it cannot be served."""
    if isinstance(index, adanns.FlatIndex):
        return "flat", {}
    if isinstance(index, adanns.IVFIndex):
        return "ivf", {"nlist": index.nlist, "cluster_dim": index.cluster_dim, "seed": index.seed,
                       "niter": index.niter}
    if isinstance(index, adanns.GraphIndex):
        return "graph", {"M": index.M, "ef_construction": index.ef_construction, "graph_dim": index.graph_dim,
                         "seed": index.seed}
    if isinstance(index, adanns.BinarizedIndex):
        return "binary", {"bits": index.bits, "rotation": index.rotation, "center": index._binarizer.center,
                          "seed": index._binarizer.seed}
    if isinstance(index, (adanns.OPQIndex, adanns.IVFOPQIndex)):
        impl = index._impl
        params = {"m": index.m, "pq_dim": index.pq_dim, "opq": index.rotation is not None, "nbits": index.nbits,
                  "store_vectors": index.store_vectors, "seed": impl.seed}
        if isinstance(index, adanns.IVFOPQIndex):
            return "ivfopq", {**params, "nlist": index.nlist, "cluster_dim": index.cluster_dim,
                              "residual": bool(impl.residual), "niter": impl.niter}
        return "opq", params
    raise Invalid(f"a {type(index).__name__} file holds codes only and cannot be served (the service takes float "
                  "vectors): create a kind 'binary' index over REST, which learns its own binarizer")
