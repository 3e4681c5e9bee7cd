"""Compute-aware search: measure a grid of search settings on a sample with exact ground truth, keep the
Pareto frontier of recall@k against MFLOPs/query, then pick a setting per search from a target recall or
a compute budget.

Generic over the index kind: a setting is a dict of search keyword arguments (IVF: ``nprobe``,
``search_dim``, ``rerank_dim``, ``rerank_k``; other kinds bring their own knobs), measured by calling the
index's ``search``. Its cost is the mean MFLOPs the searches report.

Robustness on unseen queries: a target is met by the cheapest setting whose *lower confidence bound* of
recall on the tuning sample clears it, ``mean - Z * sd / sqrt(n)`` over the per-query recalls, not the mean
alone: the mean on other queries scatters around the tuning mean by about sd / sqrt(n). Z = 1 (one standard
error) was chosen on WordNet (IVF nlist 1024, 200 random 500/500 splits of the queries): the mean alone
(Z = 0) missed target - 0.01 on the other half in 8.5% of splits at 0.90; Z = 1 never did at 0.95 and in
0.5% at 0.90, costing at most 1.3x the cheapest adequate setting in 97.5-100% of splits; Z = 1.645
(one-sided 95%) never missed but overpaid (> 1.3x) in 8% of splits at 0.95.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

FORMAT = "adanns.frontier"
VERSION = 1
META_KEY = "frontier"  # our key inside the index's JSON user metadata
Z_LCB = 1.0


@dataclass(frozen=True)
class Point:
    """One measured setting: ``params`` (search kwargs), mean recall@k and its lower confidence bound on the
    tuning sample, and mean MFLOPs/query."""

    params: dict
    recall: float
    recall_lcb: float
    mflops: float


@dataclass
class Frontier:
    """The settings worth using for one ``k`` and query length, cheapest first."""

    k: int
    query_dim: int
    nq: int
    points: list = field(default_factory=list)
    z: float = Z_LCB

    def choose(self, target_recall: float | None = None, budget_mflops: float | None = None) -> Point:
        """Cheapest point whose recall bound reaches ``target_recall``, or the most accurate (by mean recall)
        within ``budget_mflops``. Out of reach: warns and returns the most accurate / the cheapest point."""
        if (target_recall is None) == (budget_mflops is None):
            raise ValueError("give exactly one of target_recall or budget_mflops")
        if not self.points:
            raise RuntimeError("the frontier is empty: tune() measured no setting")
        if target_recall is not None:
            ok = [p for p in self.points if p.recall_lcb >= target_recall]
            if ok:
                return min(ok, key=lambda p: (p.mflops, -p.recall))
            best = max(self.points, key=lambda p: (p.recall_lcb, -p.mflops))
            warnings.warn(f"no tuned setting reaches recall@{self.k} {target_recall} (best bound "
                          f"{best.recall_lcb:.4f}); using the most accurate one", RuntimeWarning, stacklevel=3)
            return best
        ok = [p for p in self.points if p.mflops <= budget_mflops]
        if ok:
            return max(ok, key=lambda p: (p.recall, -p.mflops))
        cheapest = min(self.points, key=lambda p: p.mflops)
        warnings.warn(f"no tuned setting fits {budget_mflops} MFLOPs (cheapest {cheapest.mflops:.4f}); "
                      "using the cheapest one", RuntimeWarning, stacklevel=3)
        return cheapest

    def as_dict(self) -> dict:
        return {"k": self.k, "query_dim": self.query_dim, "nq": self.nq, "z": self.z,
                "points": [asdict(p) for p in self.points]}

    @classmethod
    def from_dict(cls, d: dict) -> "Frontier":
        """The frontier ``as_dict`` wrote; anything else (a damaged or foreign file) raises ValueError."""
        try:
            return cls(_count(d["k"]), _count(d["query_dim"]), _count(d["nq"]),
                       [Point(_params(p["params"]), _number(p["recall"]), _number(p["recall_lcb"]),
                              _number(p["mflops"])) for p in _list(d["points"])], _number(d.get("z", Z_LCB)))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"the index's tuned frontier is malformed ({type(e).__name__}: {e})") from None


# A stored frontier is read back from a file: every field is checked, so a damaged one fails here
# (ValueError) and not as a TypeError deep inside a later search.
def _count(x) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x < 2**31:
        raise ValueError(f"expected a positive integer, got {x!r}")
    return x


def _number(x) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {x!r}")
    return float(x)


def _list(x) -> list:
    if not isinstance(x, list):
        raise ValueError(f"expected a list, got {type(x).__name__}")
    return x


def _params(p) -> dict:
    """Search kwargs: names to positive integers, None, or a funnel (a list of [dim, candidates] pairs);
    ``rerank_dim`` may also be 0 (the graph kind's "no re-ranking: the walk's prefix scores")."""
    if not isinstance(p, dict):
        raise ValueError(f"expected a dict of search settings, got {type(p).__name__}")
    for name, value in p.items():
        if name == "funnel" and value is not None:
            for stage in _list(value):
                if len(_list(stage)) != 2:
                    raise ValueError(f"a funnel stage is a [dim, candidates] pair, got {stage!r}")
                _count(stage[0]), _count(stage[1])
        elif name == "rerank_dim" and type(value) is int and value == 0:
            continue
        elif value is not None:
            _count(value)
    return dict(p)


# ------------------------------------------------------------------------------------------ measuring
def per_query_recall(ids: np.ndarray, gt: np.ndarray, k: int) -> np.ndarray:
    """|found top-k ∩ true top-k| / k for each query (id -1 never matches)."""
    found, true = np.asarray(ids)[:, :k], np.asarray(gt)[:, :k]
    if found.shape[1] < k or true.shape[1] < k:
        raise ValueError(f"need k={k} columns, got {found.shape[1]} found and {true.shape[1]} in the ground truth")
    hits = (found[:, :, None] == true[:, None, :]) & (found[:, :, None] >= 0)
    return hits.any(axis=2).sum(axis=1) / k


def lower_bound(recalls: np.ndarray, z: float = Z_LCB) -> float:
    n = len(recalls)
    sd = float(np.std(recalls, ddof=1)) if n > 1 else 0.0
    return float(np.mean(recalls)) - z * sd / math.sqrt(max(n, 1))


def pareto(items: list, cost, value) -> list:
    """Items no other item beats (cost <= and value >= with one strict), sorted by cost."""
    out, best = [], -math.inf
    for it in sorted(items, key=lambda it: (cost(it), -value(it))):
        if value(it) > best:
            out.append(it)
            best = value(it)
    return out


def measure(search, queries: np.ndarray, gt: np.ndarray, k: int, grid: list, z: float = Z_LCB,
            progress=None) -> list:
    """Runs ``search(queries, k=k, **params)`` for each params dict in ``grid``; returns every Point.
    Settings the index rejects (e.g. ``rerank_k < k``) raise, so a grid error is never silent."""
    points = []
    for params in grid:
        res = search(queries, k=k, **params)
        r = per_query_recall(res.ids, gt, k)
        points.append(Point(dict(params), float(r.mean()), lower_bound(r, z), float(np.mean(res.mflops))))
        if progress is not None:
            progress(1)
    return points


def exact_ids(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, block: int = 16384) -> np.ndarray:
    """(nq, k) ids of the largest inner products of ``queries`` with the first ``queries.shape[1]``
    coordinates of ``vectors`` (row i has id ``ids[i]``), best first, ties to the smaller id; -1 pads
    when there are fewer than k rows. Blocked over rows so the score matrix stays small."""
    nq, m = queries.shape
    best_s = np.full((nq, 0), -np.inf, np.float32)
    best_i = np.empty((nq, 0), np.int64)
    for a in range(0, len(vectors), block):
        s = queries @ vectors[a:a + block, :m].T
        keep = min(k, s.shape[1])
        part = np.argpartition(-s, keep - 1, axis=1)[:, :keep]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        best_i = np.concatenate([best_i, ids[a:a + block][part]], axis=1)
        order = np.lexsort((best_i, -best_s), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    if best_i.shape[1] < k:
        best_i = np.concatenate([best_i, np.full((nq, k - best_i.shape[1]), -1, np.int64)], axis=1)
    return best_i


def frontier_points(points: list) -> list:
    """The union of the frontiers by mean recall (used for budgets) and by its bound (used for targets)."""
    keep = pareto(points, lambda p: p.mflops, lambda p: p.recall)
    keep += pareto(points, lambda p: p.mflops, lambda p: p.recall_lcb)
    seen, out = set(), []
    for p in sorted(keep, key=lambda p: (p.mflops, -p.recall)):
        key = json.dumps(p.params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# nprobe values the IVF kinds' default grids try: steps of about 1.4x up to 128 lists.
IVF_NPROBES = (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128)


def prefix_dims(d: int) -> list:
    """Candidate prefix lengths from d/8 to d (Matryoshka granularity)."""
    steps = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
    return sorted({s for s in steps if d // 8 <= s < d} | {d})


def rerank_options(k: int, d: int, search_dim: int) -> list:
    """No re-ranking, or re-rank 2k..20k candidates with all d coordinates (pointless when search_dim = d)."""
    if search_dim >= d:
        return [{}]
    return [{}] + [{"rerank_dim": d, "rerank_k": m * k} for m in (2, 5, 10, 20)]


# ------------------------------------------------------------------------------------------ persistence
class FrontierVersionError(ValueError):
    """A frontier written in another format or version: re-run tune()."""


def read_meta(raw: bytes) -> dict:
    """The index's user metadata as a JSON object ({} when empty)."""
    if not raw:
        return {}
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("the index's user metadata is not JSON; adanns will not overwrite it") from None
    if not isinstance(meta, dict):
        raise ValueError("the index's user metadata is not a JSON object; adanns will not overwrite it")
    return meta


def frontiers_from_meta(raw: bytes) -> dict:
    """{k: Frontier} saved in the metadata; {} when there is none (or foreign metadata)."""
    try:
        entry = read_meta(raw).get(META_KEY)
    except ValueError:
        return {}
    if not entry:
        return {}
    if not isinstance(entry, dict):
        raise ValueError(f"the index's tuned frontier is malformed: a {type(entry).__name__}, not an object")
    if entry.get("format") != FORMAT or entry.get("version") != VERSION:
        raise FrontierVersionError(f"the index holds a tuned frontier of format {entry.get('format')!r} version "
                         f"{entry.get('version')!r}; this adanns reads {FORMAT!r} version {VERSION}: re-run tune()")
    frontiers = entry.get("frontiers")
    if not isinstance(frontiers, dict):
        raise ValueError("the index's tuned frontier is malformed: no 'frontiers' object")
    out = {}
    for k, f in frontiers.items():
        if not (isinstance(k, str) and k.isdigit()):
            raise ValueError(f"the index's tuned frontier is malformed: key {k!r} is not a k")
        out[int(k)] = Frontier.from_dict(f)
        if out[int(k)].k != int(k):
            raise ValueError(f"the index's tuned frontier is malformed: the frontier under k={k} is for "
                             f"k={out[int(k)].k}")
    return out


def meta_with_frontiers(raw: bytes, frontiers: dict) -> bytes:
    meta = read_meta(raw)
    meta[META_KEY] = {"format": FORMAT, "version": VERSION,
                      "frontiers": {str(k): f.as_dict() for k, f in sorted(frontiers.items())}}
    return json.dumps(meta, separators=(",", ":")).encode("utf-8")


def check_target(target_recall, budget_mflops) -> None:
    if target_recall is not None:
        if isinstance(target_recall, bool) or not isinstance(target_recall, (int, float)):
            raise TypeError(f"target_recall must be a number, got {type(target_recall).__name__}")
        if not 0.0 < target_recall <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    if budget_mflops is not None:
        if isinstance(budget_mflops, bool) or not isinstance(budget_mflops, (int, float)):
            raise TypeError(f"budget_mflops must be a number, got {type(budget_mflops).__name__}")
        if not (math.isfinite(budget_mflops) and budget_mflops > 0):
            raise ValueError(f"budget_mflops must be a positive finite number, got {budget_mflops}")
    if target_recall is not None and budget_mflops is not None:
        raise ValueError("give target_recall or budget_mflops, not both")
