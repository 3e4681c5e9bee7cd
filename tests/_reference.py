"""float64 numpy references and result checkers shared by the index tests."""

from __future__ import annotations

import numpy as np

METRICS = ("ip", "l2", "cosine")


def larger_is_better(metric: str) -> bool:
    return metric != "l2"


def pad_score(metric: str) -> float:
    return np.inf if metric == "l2" else -np.inf


def ref_scores(q: np.ndarray, x: np.ndarray, s: int, metric: str) -> np.ndarray:
    """(nq, n) float64 scores of q[:, :s] against x[:, :s] (l2 = squared distance)."""
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))[:, :s]
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))[:, :s]
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return q @ x.T
    if metric == "ip":
        return q @ x.T
    if metric == "l2":
        d = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * (q @ x.T)
        return np.maximum(d, 0.0)
    raise AssertionError(metric)


def score_tol(q: np.ndarray, x: np.ndarray, s: int, metric: str, rel: float = 1e-4) -> np.ndarray:
    """Per-query absolute tolerance for float32 scores: rel times a Cauchy-Schwarz bound."""
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))[:, :s]
    x = np.asarray(x, dtype=np.float64)[:, :s]
    if metric == "cosine":
        return np.full(len(q), rel)
    qn = np.linalg.norm(q, axis=1)
    xn = np.linalg.norm(x, axis=1).max() if len(x) else 0.0
    if metric == "ip":
        return rel * qn * xn + 1e-7
    return rel * (qn + xn) ** 2 + 1e-7


def _ranked(values: np.ndarray, metric: str) -> np.ndarray:
    """values sorted best first."""
    v = np.sort(values)
    return v[::-1] if larger_is_better(metric) else v


def check_result_shape(res, nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(res.scores)
    ids = np.asarray(res.ids)
    assert scores.shape == (nq, k), scores.shape
    assert ids.shape == (nq, k), ids.shape
    assert scores.dtype == np.float32, scores.dtype
    assert ids.dtype == np.int64, ids.dtype
    return scores, ids


def _check_row_order(got: np.ndarray, got_ids: np.ndarray, metric: str, where: str) -> None:
    sign = 1.0 if larger_is_better(metric) else -1.0
    steps = sign * np.diff(got.astype(np.float64))
    assert np.all(steps <= 0), f"{where}: scores not sorted best first: {got}"
    tied = np.diff(got.astype(np.float64)) == 0
    assert np.all(np.diff(got_ids)[tied] > 0), f"{where}: equal scores not ordered by id: {got} {got_ids}"


def assert_topk_matches(res, ref: np.ndarray, row_ids, k: int, metric: str, tol, ctx: str = "") -> None:
    """res must be a valid top-k of ref (nq, n) over row_ids (n,), up to `tol` (per query).

    ids may differ from numpy's on near ties, so the check is: every returned id's
    reference score equals the returned score, and the returned scores equal the
    reference top-k scores; the tail beyond the available rows is padding.
    """
    nq, n = ref.shape
    scores, ids = check_result_shape(res, nq, k)
    row_ids = np.asarray(row_ids, dtype=np.int64)
    pos = {int(i): j for j, i in enumerate(row_ids)}
    valid = min(k, n)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), (nq,))
    for qi in range(nq):
        where = f"{ctx} query {qi}"
        got = scores[qi, :valid].astype(np.float64)
        got_ids = ids[qi, :valid]
        assert np.all(ids[qi, valid:] == -1), f"{where}: padding ids {ids[qi]}"
        assert np.all(scores[qi, valid:] == pad_score(metric)), f"{where}: padding scores {scores[qi]}"
        unknown = [int(i) for i in got_ids if int(i) not in pos]
        assert not unknown, f"{where}: ids {unknown} are not in the index"
        assert len(set(got_ids.tolist())) == valid, f"{where}: duplicate ids {got_ids}"
        _check_row_order(scores[qi, :valid], got_ids, metric, where)
        cols = np.array([pos[int(i)] for i in got_ids], dtype=np.int64)
        np.testing.assert_allclose(
            got, ref[qi, cols], rtol=0, atol=tol[qi],
            err_msg=f"{where}: returned scores differ from the reference scores of the returned ids",
        )
        np.testing.assert_allclose(
            got, _ranked(ref[qi], metric)[:valid], rtol=0, atol=tol[qi],
            err_msg=f"{where}: returned scores differ from the reference top-{k}",
        )


def assert_rerank_matches(res, ref_search, ref_rerank, row_ids, k, rerank_k, metric, tol_s, tol_r, ctx=""):
    """Two-stage reference: top-`rerank_k` by ref_search, then the best `k` of those by ref_rerank.

    Near ties at the candidate cut-off make the candidate set ambiguous, so the j-th
    returned score must lie between the j-th best over the certain candidates and the
    j-th best over the possible candidates.
    """
    nq, n = ref_search.shape
    scores, ids = check_result_shape(res, nq, k)
    row_ids = np.asarray(row_ids, dtype=np.int64)
    pos = {int(i): j for j, i in enumerate(row_ids)}
    sign = 1.0 if larger_is_better(metric) else -1.0
    valid = min(k, n)
    c = min(rerank_k, n)
    tol_s = np.broadcast_to(np.asarray(tol_s, dtype=np.float64), (nq,))
    tol_r = np.broadcast_to(np.asarray(tol_r, dtype=np.float64), (nq,))
    for qi in range(nq):
        where = f"{ctx} query {qi}"
        s = sign * ref_search[qi]
        r = sign * ref_rerank[qi]
        cut = np.sort(s)[::-1][c - 1]
        certain = s > cut + tol_s[qi]
        possible = s >= cut - tol_s[qi]
        got = scores[qi, :valid].astype(np.float64)
        got_ids = ids[qi, :valid]
        assert np.all(ids[qi, valid:] == -1), f"{where}: padding ids {ids[qi]}"
        assert np.all(scores[qi, valid:] == pad_score(metric)), f"{where}: padding scores {scores[qi]}"
        unknown = [int(i) for i in got_ids if int(i) not in pos]
        assert not unknown, f"{where}: ids {unknown} are not in the index"
        assert len(set(got_ids.tolist())) == valid, f"{where}: duplicate ids {got_ids}"
        _check_row_order(scores[qi, :valid], got_ids, metric, where)
        cols = np.array([pos[int(i)] for i in got_ids], dtype=np.int64)
        assert np.all(possible[cols]), f"{where}: ids {got_ids[~possible[cols]]} were not rerank candidates"
        np.testing.assert_allclose(
            got, ref_rerank[qi, cols], rtol=0, atol=tol_r[qi],
            err_msg=f"{where}: returned scores are not the rerank_dim scores of the returned ids",
        )
        lower = np.full(valid, -np.inf)
        best_certain = np.sort(r[certain])[::-1][:valid]
        lower[: len(best_certain)] = best_certain
        upper = np.sort(r[possible])[::-1][:valid]
        assert np.all(sign * got >= lower - tol_r[qi]), f"{where}: {got} worse than {sign * lower}"
        assert np.all(sign * got <= upper + tol_r[qi]), f"{where}: {got} better than {sign * upper}"


def gaussian(rng: np.random.Generator, n: int, d: int, offset: float = 0.0) -> np.ndarray:
    return (rng.standard_normal((n, d)) + offset).astype(np.float32)


def snapshot(index, q, k=5, **kw):
    """(len, scores, ids[, list_sizes]) for checking that a rejected call changed nothing."""
    res = index.search(q, k=k, **kw)
    parts = [len(index), np.asarray(res.scores).copy(), np.asarray(res.ids).copy()]
    if hasattr(index, "list_sizes"):
        parts.append(np.asarray(index.list_sizes()).copy())
    return parts


def assert_same_snapshot(before, after):
    assert before[0] == after[0], f"len changed: {before[0]} -> {after[0]}"
    for a, b in zip(before[1:], after[1:]):
        np.testing.assert_array_equal(a, b)
