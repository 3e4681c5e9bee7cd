"""Filtered search: is adanns IVF with a filter faster than faiss IVF + IDSelectorBitmap and hnswlib with a
filter function, at equal recall? (wordnet-minilm, metric ip, 1 thread, k=10)

Attributes are synthetic but realistic: ``tag`` a Zipf-distributed keyword (200 values), ``year`` a uniform
integer 1900..2023, ``class`` the corpus's own 45 WordNet lexicographer classes. For each target selectivity
(50%, 10%, 1%, 0.1%) a seeded search draws --filters expressions from a few templates (year ranges, classes,
tags, must_not, combinations) whose real selectivity is within x1.25 of the target; queries are dealt to the
filters round-robin and each filter's queries run as one batch (every system alike). Ground truth: the exact
top-10 by inner product among the matching rows (numpy over the matching rows).

Sections (``--only``): ``compare`` (the sweep and the head to head per selectivity), ``planner`` (direct
exact scoring vs bitset scan of the IVF index across selectivities: where the crossover lies).

adanns: IVFIndex nlist 1024, cluster_dim 64, swept over nprobe x search_dim x rerank_k (rerank_dim 384);
faiss: IndexIVFFlat (nlist 1024 and 2048) with SearchParametersIVF(sel=IDSelectorBitmap), nprobe swept;
hnswlib: M=16, ef_construction=200, ef swept, filter = a Python callable (its API). Each system's fastest
setting reaching recall@10 >= 0.95 is re-timed in turns (best of --repeats); "not reached" is recorded.
Filter compilation (expression -> allowed ids, validated in Python and executed natively) is timed separately,
per filter (also its native part alone), and compared with the search time per query, in a batch and one at a time
(the service case: every query compiles its own filter).

    .venv/bin/python benchmarks/filtered_vs_faiss.py            # ~15 min on a shared 2-core machine
    .venv/bin/python benchmarks/filtered_vs_faiss.py --quick    # smaller grids
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins BLAS/OpenMP to one thread before numpy/faiss load)

import argparse
import json
import time
from pathlib import Path

import numpy as np

import adanns
from adanns.filters import _encode
import faiss
import hnswlib

from _common import (add_data_arg, cpu_summary, load_corpus, machine_info, print_table, recall_at,
                     time_interleaved, write_results)

K = 10
TARGET = 0.95
SELECTIVITIES = (0.5, 0.1, 0.01, 0.001)
NLIST, CLUSTER_DIM = 1024, 64


def make_attributes(n: int, labels: np.ndarray, names: list, rng) -> dict:
    return {"tag": [f"t{min(int(z), 200)}" for z in rng.zipf(1.3, n)],
            "year": rng.integers(1900, 2024, n),
            "class": [names[int(c)] for c in labels]}


def random_expression(rng, names: list) -> dict:
    """One expression from a few templates a catalogue or a tenant filter would use."""
    def years():
        a = int(rng.integers(1900, 2024))
        return {"key": "year", "range": {"gte": a, "lt": a + int(rng.integers(1, 125))}}
    def classes():
        return {"key": "class", "match": {"any": [str(c) for c in rng.choice(names, int(rng.integers(1, 12)))]}}
    def tag():
        return {"key": "tag", "match": {"value": f"t{int(min(rng.zipf(1.3), 200))}"}}
    t = rng.integers(0, 6)
    if t == 0:
        return years()
    if t == 1:
        return {"must": [classes(), years()]}
    if t == 2:
        return {"must": [tag(), years()]}
    if t == 3:
        return {"must": [years()], "must_not": [classes()]}
    if t == 4:
        return {"should": [tag(), classes()], "must": [years()]}
    return {"must": [classes()], "must_not": [tag()]}


def pick_filters(index, n: int, target: float, count: int, names: list, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(200000):
        expr = random_expression(rng, names)
        ids = index.compile_filter(expr)
        if target / 1.25 <= len(ids) / n <= target * 1.25:
            out.append((expr, ids))
            if len(out) == count:
                return out
    raise SystemExit(f"could not draw {count} filters of selectivity {target}")


def exact_top(base: np.ndarray, queries: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    scores = queries @ base[allowed].T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return allowed[top]


def run_groups(groups, search) -> tuple[np.ndarray, float]:
    """Runs search(queries, group) per filter group; returns ids in query order and the wall time."""
    out = [None] * len(groups)
    t0 = time.perf_counter()
    for g, group in enumerate(groups):
        out[g] = search(group)
    return out, time.perf_counter() - t0


def group_recall(groups, results) -> float:
    return float(np.mean([recall_at(ids, g["gt"], K) for g, ids in zip(groups, results)]))


def hnsw_search(index, group, ef):
    index.set_ef(ef)
    fn = group["mask_list"].__getitem__
    try:
        labels, _ = index.knn_query(group["q"], k=K, num_threads=1, filter=fn)
        return labels.astype(np.int64)
    except RuntimeError:  # fewer than k found for some query: one at a time, padded
        out = np.full((len(group["q"]), K), -1, np.int64)
        for i, q in enumerate(group["q"]):
            try:
                out[i] = index.knn_query(q, k=K, num_threads=1, filter=fn)[0][0]
            except RuntimeError:
                pass
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_arg(ap)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--filters", type=int, default=5, help="filters per selectivity (default 5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="compare,planner")
    ap.add_argument("--hnsw-budget", type=float, default=60.0,
                    help="stop the hnswlib ef sweep after a pass slower than this many seconds (default 60)")
    ap.add_argument("--build-threads", type=int, default=2, help="threads for building only (default 2)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    corpus = load_corpus(args.data)
    base, queries = corpus.base, corpus.queries
    n, d = base.shape
    data = Path(corpus.path)
    labels = np.load(data / "labels_base.npy")
    names = json.loads((data / "label_names.json").read_text())
    info = machine_info()
    print(cpu_summary(info))

    t0 = time.perf_counter()
    ivf = adanns.IVFIndex(d, NLIST, "ip", cluster_dim=CLUSTER_DIM, seed=1)
    ivf.train(base, threads=args.build_threads)
    ivf.add(base, attributes=make_attributes(n, labels, names, np.random.default_rng(7)),
            threads=args.build_threads)
    print(f"adanns IVF built in {time.perf_counter() - t0:.1f} s")
    payload = {}

    if "planner" in only:
        payload["planner"] = planner(ivf, base, queries[:200])

    if "compare" not in only:
        write_results("filtered_vs_faiss", payload)
        return

    faiss_nlists = [1024] if args.quick else [1024, 2048]
    faiss_indexes = {}
    for nl in faiss_nlists:
        t0 = time.perf_counter()
        faiss.omp_set_num_threads(args.build_threads)
        fi = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nl, faiss.METRIC_INNER_PRODUCT)
        fi.cp.seed = 1
        fi.train(base)
        fi.add(base)
        faiss.omp_set_num_threads(1)
        faiss_indexes[nl] = fi
        print(f"faiss IVF{nl} built in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    hnsw = hnswlib.Index(space="ip", dim=d)
    hnsw.init_index(max_elements=n, M=16, ef_construction=200, random_seed=1)
    hnsw.add_items(base, np.arange(n), num_threads=args.build_threads)
    print(f"hnswlib built in {time.perf_counter() - t0:.1f} s")

    if args.quick:
        grid = [(sd, rk) for sd in (192, 384) for rk in (0, 50)]
        nprobes = [8, 16, 32, 64, 128]
        faiss_nprobes = [8, 16, 32, 64, 128, 256]
        efs = [10, 20, 40, 80, 160, 320]
    else:
        grid = [(sd, rk) for sd in (128, 192, 384) for rk in (0, 50, 100)]
        nprobes = [4, 8, 16, 32, 64, 128, 256]
        faiss_nprobes = [4, 8, 16, 32, 64, 128, 256, 512]
        efs = [10, 20, 40, 80, 160, 320, 640]

    rows, sweep_rows, summary, compile_rows, drawn = [], [], [], [], {}
    for sel in SELECTIVITIES:
        filters = pick_filters(ivf, n, sel, args.filters, names, seed=int(sel * 1e6))
        groups = []
        for f, (expr, allowed) in enumerate(filters):
            qi = np.arange(f, len(queries), len(filters))
            mask = np.zeros(n, bool)
            mask[allowed] = True
            packed = np.packbits(mask, bitorder="little")
            groups.append({"expr": expr, "allowed": allowed, "q": queries[qi], "gt": exact_top(base, queries[qi], allowed),
                           "mask_list": mask.tolist(), "packed": packed,
                           "selector": faiss.IDSelectorBitmap(n, faiss.swig_ptr(packed))})
        real_sel = float(np.mean([len(g["allowed"]) / n for g in groups]))
        drawn[f"{sel}"] = [{"filter": g["expr"], "selectivity": len(g["allowed"]) / n} for g in groups]
        nq = sum(len(g["q"]) for g in groups)

        # Filter compilation, per filter (each query in a service compiles its own).
        compile_us, native_us = [], []
        store = ivf._store()
        for g in groups:
            best = min(_timed(lambda: ivf._allowed(g["expr"])) for _ in range(20))  # what search() runs
            compile_us.append(best * 1e6)
            program = []
            _encode(g["expr"], store, program)
            program = np.asarray(program, np.int64)
            native_us.append(min(_timed(lambda: store.run(program, True)) for _ in range(20)) * 1e6)

        # Sweeps: each setting once over all groups; keep the fastest reaching the target.
        candidates = {"adanns": [], "faiss": [], "hnswlib": []}
        for sd, rk in grid:
            for npb in nprobes:
                kw = dict(nprobe=npb, search_dim=sd, threads=1)
                if rk:
                    kw.update(rerank_dim=d, rerank_k=rk)
                fn = (lambda kw: lambda g: ivf.search(g["q"], K, filter=g["expr"], **kw).ids)(kw)
                res, wall = run_groups(groups, fn)
                r = group_recall(groups, res)
                label = f"d_s {sd} rerank_k {rk} nprobe {npb}"
                candidates["adanns"].append((r, nq / wall, label, fn, kw))
                sweep_rows.append([f"{sel:.1%}", "adanns", label, r, nq / wall])
                if r >= 0.995:
                    break
        for nl, fi in faiss_indexes.items():
            for npb in faiss_nprobes:
                fn = (lambda fi, npb: lambda g: fi.search(
                    g["q"], K, params=faiss.SearchParametersIVF(sel=g["selector"], nprobe=npb))[1])(fi, npb)
                res, wall = run_groups(groups, fn)
                r = group_recall(groups, res)
                label = f"nlist {nl} nprobe {npb}"
                candidates["faiss"].append((r, nq / wall, label, fn))
                sweep_rows.append([f"{sel:.1%}", "faiss", label, r, nq / wall])
                if r >= 0.995:
                    break
        for ef in efs:
            fn = (lambda ef: lambda g: hnsw_search(hnsw, g, ef))(ef)
            res, wall = run_groups(groups, fn)
            r = group_recall(groups, res)
            candidates["hnswlib"].append((r, nq / wall, f"ef {ef}", fn))
            sweep_rows.append([f"{sel:.1%}", "hnswlib", f"ef {ef}", r, nq / wall])
            if r >= 0.995 or wall > args.hnsw_budget:  # a Python callback per visited node: selective filters crawl
                break

        # Head to head: each system's fastest setting at the target, timed in turns.
        winners = {}
        for system, cands in candidates.items():
            ok = [c for c in cands if c[0] >= TARGET]
            winners[system] = max(ok, key=lambda c: c[1]) if ok else None
        fns = {s: (lambda fn: lambda: run_groups(groups, fn))(w[3]) for s, w in winners.items() if w}
        timings = time_interleaved(fns, repeats=args.repeats)
        qps = {s: nq / timings[s].best for s in fns}
        counts_ok = None
        if winners["adanns"]:
            res, _ = run_groups(groups, winners["adanns"][3])
            counts_ok = all(((ids >= 0).sum(axis=1) == min(K, len(g["allowed"]))).all() for g, ids in zip(groups, res))
        search_us = 1e6 / qps["adanns"] if "adanns" in qps else float("nan")
        # The service path: one query at a time, each compiling its own filter (adanns winner's setting).
        single_qps = float("nan")
        if winners["adanns"]:
            kw = winners["adanns"][4]  # the winner's search kwargs
            t0 = time.perf_counter()
            for g in groups:
                for qv in g["q"]:
                    ivf.search(qv[None], K, filter=g["expr"], **kw)
            single_qps = nq / (time.perf_counter() - t0)
        single_us = 1e6 / single_qps
        compile_rows.append([f"{sel:.1%}", f"{real_sel:.2%}", float(np.mean(compile_us)), float(np.max(compile_us)),
                             float(np.mean(native_us)), search_us, float(np.mean(compile_us)) / search_us,
                             single_us, float(np.mean(compile_us)) / single_us])
        row = [f"{sel:.1%}", f"{real_sel:.2%}"]
        for s in ("adanns", "faiss", "hnswlib"):
            w = winners[s]
            row += [w[2] if w else "not reached", w[0] if w else float("nan"), qps.get(s, float("nan"))]
        ratio_f = qps["adanns"] / qps["faiss"] if "adanns" in qps and "faiss" in qps else float("nan")
        ratio_h = qps["adanns"] / qps["hnswlib"] if "adanns" in qps and "hnswlib" in qps else float("nan")
        row += [ratio_f, ratio_h, "yes" if counts_ok else "NO"]
        rows.append(row)
        print_table(f"selectivity {sel:.1%}", COLUMNS, [row])
        def said(ratio, peer):
            return f"{ratio:.2f}x" if ratio == ratio else f"n/a ({peer} did not reach {TARGET})"
        summary.append(f"selectivity {sel:.1%} (real {real_sel:.2%}): adanns/faiss {said(ratio_f, 'faiss')} "
                       f"(target >= 2), adanns/hnswlib {said(ratio_h, 'hnswlib')} (target >= 1); k results "
                       f"whenever k rows match: {'yes' if counts_ok else 'NO'}")

    print_table("Filter compilation per filter (us) vs adanns search per query (us) at the chosen setting",
                COMPILE_COLUMNS, compile_rows)
    payload["compare"] = {
        "summary": summary,
        "tables": [
            {"title": f"Fastest setting reaching recall@10 >= {TARGET} per system, QPS best of {args.repeats} timed "
                      "in turns (1 thread, k=10, metric ip)", "columns": COLUMNS, "rows": rows},
            {"title": "Filter compilation (expression -> allowed ids: validated, encoded, executed natively in one "
                      "call) per filter vs adanns search time per query, in a batch sharing the filter and one "
                      "query at a time (each compiling its own filter, the service's case)",
             "columns": COMPILE_COLUMNS, "rows": compile_rows},
            {"title": "Sweep (each setting timed once over all groups)",
             "columns": ["selectivity", "system", "setting", "recall@10", "QPS"], "rows": sweep_rows},
        ],
        "filters": drawn,
        "note": "shared 2-vCPU machine with other agents working: timings are noisy; the ratios come from runs "
                "timed in turns in one process. Each filter's queries run as one batch sharing the filter (the "
                "direct plan amortises its row gathering over the batch; the last compile column shows one query "
                "at a time). hnswlib's filter is a Python callable, called with the GIL for every visited node: "
                "its Python API, which dominates at selective filters.",
    }
    write_results("filtered_vs_faiss", payload)


COLUMNS = ["selectivity", "real", "adanns setting", "adanns recall", "adanns QPS", "faiss setting", "faiss recall",
           "faiss QPS", "hnswlib setting", "hnswlib recall", "hnswlib QPS", "adanns/faiss", "adanns/hnswlib",
           "k results"]
COMPILE_COLUMNS = ["selectivity", "real", "compile us (mean)", "compile us (max)", "of which native us (mean)",
                   "search us/query (batch)", "compile / search (batch)", "us per query one at a time, compile included",
                   "compile share one at a time"]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def planner(ivf, base, queries) -> dict:
    """Direct exact scoring vs bitset scan (d_s 384) on random allowed sets of each selectivity: a batch of
    200 queries sharing the filter, and single queries (a service compiles one filter per query)."""
    rng = np.random.default_rng(3)
    n, d = base.shape
    rows = []
    for sel in (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16):
        allowed = np.sort(rng.choice(n, int(sel * n), replace=False)).astype(np.int64)
        gt = exact_top(base, queries, allowed)
        row = [f"{sel:.2%}"]
        for batch in (True, False):
            for name, bfb, nprobe in (("direct", 1.0, 32), ("scan", 0.0, 32), ("scan", 0.0, 128)):
                def fn(bfb=bfb, nprobe=nprobe, qs=queries if batch else queries[:50]):
                    if batch:
                        return ivf._impl.search(qs, K, nprobe, d, 0, 0, 1, [], allowed, bfb)[1]
                    return np.vstack([ivf._impl.search(qs[i:i + 1], K, nprobe, d, 0, 0, 1, [], allowed, bfb)[1]
                                      for i in range(len(qs))])
                nq = len(queries) if batch else 50
                best = min(_timed(fn) for _ in range(3 if batch else 1))
                row += [best / nq * 1e6, recall_at(fn(), gt[:nq], K)]
        rows.append(row)
    columns = ["selectivity"] + [f"{mode} {what}" for mode in ("batch", "single") for what in
                                 ("direct us/q", "direct recall", "scan32 us/q", "scan32 recall", "scan128 us/q",
                                  "scan128 recall")]
    print_table("Planner: direct exact scoring vs bitset scan", columns, rows)
    return {"tables": [{"title": "Planner crossover: direct (exact) vs bitset scan at nprobe 32 / 128, IVF nlist 1024, "
                                 "d_s 384, uniform random allowed sets; batch = 200 queries sharing the filter, "
                                 "single = 50 queries one at a time; 1 thread", "columns": columns, "rows": rows}],
            "summary": [f"default rule: direct when the filter allows <= {adanns_threshold():.0%} of the rows"]}


def adanns_threshold() -> float:
    return adanns._core.DEFAULT_BRUTE_FORCE_BELOW


if __name__ == "__main__":
    main()
