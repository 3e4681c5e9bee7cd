"""Is adanns as fast as faiss, and does adaptivity pay? (wordnet-minilm, metric ip, 1 thread, k=10)

Sections (``--only``, comma-separated; default all, run in this order):

  flat      FlatIndex(384, "ip") vs faiss IndexFlatIP: QPS for a batch of 1,000 queries and for single
            queries (a loop of --single-queries calls). Targets: >= 0.8x (batch), >= 1.0x (single).
  kmeans    adanns.kmeans vs faiss.Kmeans, k=1024, niter=20, seed=1, 1 thread, on the base set: wall
            time ratio (target <= 1.5x) and the final objective of both, computed the same way (full base
            assigned to each centroid set with faiss IndexFlatL2, sum of squared distances; target 1%).
  parity    Same configuration: IVFIndex(cluster_dim = search_dim = 384, no re-ranking) vs
            IndexIVFFlat(IndexFlatIP, METRIC_INNER_PRODUCT), nlist 256/1024, nprobe 1..64, both trained
            with niter=20 on the base: recall@10, QPS and the QPS ratio at each point.
  adaptive  Fastest configuration reaching recall@10 >= 0.95 (and >= 0.90) for each system: adanns over
            nlist x cluster_dim x search_dim x nprobe x rerank_k (rerank_dim 384), faiss IndexIVFFlat over
            nlist x nprobe. Target: adanns/faiss QPS >= 2.5x at 0.95. Prints both Pareto frontiers.

Every ratio is adanns / faiss, measured in the same process, competitors timed in turns. QPS comes from the
best of --repeats runs over the whole 1,000-query batch (the adaptive sweep times each configuration once,
then re-times the near-frontier ones best-of---repeats, then the two winners head to head).

Run from the repository root:
    .venv/bin/python benchmarks/ivf_vs_faiss.py --quick          # a few minutes, writes results/ivf_vs_faiss_quick.*
    .venv/bin/python benchmarks/ivf_vs_faiss.py                  # everything (~25 min on 1 core)
    .venv/bin/python benchmarks/ivf_vs_faiss.py --only flat,kmeans,parity
Sections run separately accumulate into the same results/ivf_vs_faiss.{json,md}.
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins BLAS/OpenMP to one thread before numpy/faiss load)

import argparse
import gc
import math
import sys
import time

import numpy as np

import adanns
import faiss

from _common import (Timing, add_data_arg, cpu_summary, load_corpus, machine_info, print_table, recall_at,
                     time_fn, time_interleaved, write_results)

K = 10
THREADS = 1
SECTIONS = ("flat", "kmeans", "parity", "adaptive")
TARGETS = (0.95, 0.90)

FULL = dict(
    parity_nlists=[256, 1024], parity_nprobes=[1, 2, 4, 8, 16, 32, 64],
    nlists=[256, 512, 1024, 2048], cluster_dims=[32, 64, 128, 384],
    search_dims=[16, 32, 64, 96, 128, 192, 256, 384], rerank_ks=[0, 50, 100, 200],
    nprobes=[1, 2, 4, 8, 16, 32, 64, 128], faiss_nlists=[256, 512, 1024, 2048],
    kmeans_k=1024, kmeans_niter=20,
)
QUICK = dict(
    parity_nlists=[1024], parity_nprobes=[1, 4, 16, 64],
    nlists=[1024], cluster_dims=[64, 384],
    search_dims=[64, 128, 384], rerank_ks=[0, 100],
    nprobes=[1, 2, 4, 8, 16, 32, 64, 128], faiss_nlists=[1024],
    kmeans_k=256, kmeans_niter=10,
)


def ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v.strip()]


# ------------------------------------------------------------------------------------ index builders
class Builds:
    """Trained and filled IVF indexes, shared between sections in one run (built once each)."""

    def __init__(self, corpus, niter: int, seed: int):
        self.c, self.niter, self.seed = corpus, niter, seed
        self.adanns, self.faiss = {}, {}
        self.build_times = {}  # ("adanns", nlist, d_c) / ("faiss", nlist) -> {"train_s", "add_s"}

    def adanns_ivf(self, nlist: int, cluster_dim: int):
        key = (nlist, cluster_dim)
        if key not in self.adanns:
            x = self.c.base
            ivf = adanns.IVFIndex(self.c.dim, nlist, metric="ip", cluster_dim=cluster_dim, seed=self.seed,
                                  niter=self.niter)
            t0 = time.perf_counter()
            ivf.train(x, threads=THREADS)
            t1 = time.perf_counter()
            ivf.add(x, threads=THREADS)
            t2 = time.perf_counter()
            self.adanns[key] = ivf
            self.build_times[("adanns", nlist, cluster_dim)] = {"train_s": t1 - t0, "add_s": t2 - t1}
            print(f"  built adanns IVF nlist={nlist} d_c={cluster_dim}: train {t1 - t0:.1f}s add {t2 - t1:.1f}s",
                  flush=True)
        return self.adanns[key]

    def faiss_ivf(self, nlist: int):
        if nlist not in self.faiss:
            x, d = self.c.base, self.c.dim
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = self.niter
            index.cp.seed = self.seed
            t0 = time.perf_counter()
            index.train(x)
            t1 = time.perf_counter()
            index.add(x)
            t2 = time.perf_counter()
            sizes = np.array([index.invlists.list_size(i) for i in range(nlist)], dtype=np.int64)
            self.faiss[nlist] = (index, quantizer, sizes)
            self.build_times[("faiss", nlist)] = {"train_s": t1 - t0, "add_s": t2 - t1}
            print(f"  built faiss IndexIVFFlat nlist={nlist}: train {t1 - t0:.1f}s add {t2 - t1:.1f}s", flush=True)
        return self.faiss[nlist]

    def drop_adanns(self, key):
        self.adanns.pop(key, None)
        gc.collect()

    def drop_faiss(self, nlist):
        self.faiss.pop(nlist, None)
        gc.collect()


def faiss_mflops(entry, queries: np.ndarray, nprobe: int) -> np.ndarray:
    """Per-query MFLOPs of IndexIVFFlat, counted like adanns (1 multiply-add = 1 FLOP): the coarse
    quantizer over nlist centroids plus every vector of the probed lists, full dimension."""
    index, quantizer, sizes = entry
    d = index.d
    _, lists = quantizer.search(queries, nprobe)
    scanned = np.where(lists >= 0, sizes[np.maximum(lists, 0)], 0).sum(axis=1)
    return (index.nlist * d + scanned * d) / 1e6


def faiss_search(entry, queries, nprobe):
    index = entry[0]
    index.nprobe = nprobe
    return index.search(queries, K)


# ------------------------------------------------------------------------------------ sections
def section_flat(c, args) -> dict:
    print("\n== flat: FlatIndex vs IndexFlatIP ==", flush=True)
    a = adanns.FlatIndex(c.dim, "ip")
    a.add(c.base)
    f = faiss.IndexFlatIP(c.dim)
    f.add(c.base)
    q = c.queries
    ra = a.search(q, K, threads=THREADS)
    _, f_ids = f.search(q, K)
    rec_a, rec_f = recall_at(ra.ids, c.gt), recall_at(f_ids, c.gt)
    same = float((ra.ids == f_ids).mean())

    batch = time_interleaved({"adanns": lambda: a.search(q, K, threads=THREADS),
                              "faiss": lambda: f.search(q, K)}, repeats=args.repeats)
    singles = [q[i:i + 1] for i in range(min(args.single_queries, q.shape[0]))]

    def loop_a():
        for s in singles:
            a.search(s, K, threads=THREADS)

    def loop_f():
        for s in singles:
            f.search(s, K)

    single = time_interleaved({"adanns": loop_a, "faiss": loop_f}, repeats=args.repeats, warmup=1)
    nq, ns = q.shape[0], len(singles)
    rows = [
        ["batch of %d" % nq, batch["adanns"].rate(nq), batch["faiss"].rate(nq),
         batch["adanns"].rate(nq) / batch["faiss"].rate(nq), 0.8],
        ["one at a time (%d)" % ns, single["adanns"].rate(ns), single["faiss"].rate(ns),
         single["adanns"].rate(ns) / single["faiss"].rate(ns), 1.0],
    ]
    cols = ["mode", "adanns QPS", "faiss QPS", "ratio adanns/faiss", "target >="]
    print_table(f"flat, 1 thread, k={K} (recall@10 adanns {rec_a:.4f}, faiss {rec_f:.4f}; "
                f"same ids {same:.4f})", cols, rows)
    return {
        "question": "FlatIndex vs faiss IndexFlatIP QPS (batch and single query), 1 thread",
        "recall_at_10": {"adanns": rec_a, "faiss": rec_f}, "same_ids_fraction": same,
        "batch": {k: v.as_dict() for k, v in batch.items()}, "single": {k: v.as_dict() for k, v in single.items()},
        "n_single_queries": ns,
        "summary": [f"batch ratio {rows[0][3]:.2f}x (target >= 0.8), single-query ratio {rows[1][3]:.2f}x "
                    f"(target >= 1.0)"],
        "tables": [{"title": "Flat search QPS, 1 thread, k=10", "columns": cols, "rows": rows}],
    }


def l2_objective(x: np.ndarray, centroids: np.ndarray) -> float:
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, _ = index.search(x, 1)
    return float(dist[:, 0].astype(np.float64).sum())


def section_kmeans(c, args) -> dict:
    k, niter, seed = args.kmeans_k, args.kmeans_niter, args.seed
    print(f"\n== kmeans: k={k}, niter={niter}, seed={seed}, n={c.base.shape[0]}, d={c.dim} ==", flush=True)
    x = c.base
    out = {}

    def run_a():
        out["adanns"] = adanns.kmeans(x, k=k, niter=niter, seed=seed, threads=THREADS, return_objective=True)

    def run_f():
        km = faiss.Kmeans(c.dim, k, niter=niter, seed=seed)
        km.train(x)
        out["faiss"] = (km.centroids.copy(), float(km.obj[-1]))

    t = time_interleaved({"adanns": run_a, "faiss": run_f}, repeats=args.kmeans_repeats)
    cent_a, own_a = out["adanns"]
    cent_f, own_f = out["faiss"]
    obj_a, obj_f = l2_objective(x, cent_a), l2_objective(x, cent_f)
    rel = (obj_a - obj_f) / obj_f
    ratio = t["adanns"].best / t["faiss"].best
    sampled = min(x.shape[0], 256 * k)
    cols = ["system", "wall s (best)", "objective (full base, L2)", "own reported objective"]
    rows = [["adanns", t["adanns"].best, obj_a, own_a], ["faiss", t["faiss"].best, obj_f, own_f]]
    print_table(f"k-means on {sampled} of {x.shape[0]} points (256 per centroid cap)", cols, rows)
    print(f"  time ratio adanns/faiss {ratio:.2f}x (target <= 1.5); objective rel. diff {100 * rel:+.3f}% "
          f"(target within 1%)")
    return {
        "question": "adanns.kmeans vs faiss.Kmeans wall time and objective, 1 thread",
        "params": {"k": k, "niter": niter, "seed": seed, "n": x.shape[0], "dim": c.dim,
                   "points_used": sampled, "repeats": args.kmeans_repeats},
        "time": {s: v.as_dict() for s, v in t.items()}, "time_ratio": ratio,
        "objective_full_base": {"adanns": obj_a, "faiss": obj_f}, "objective_rel_diff": rel,
        "objective_own": {"adanns": own_a, "faiss_last_iteration": own_f},
        "summary": [f"time ratio adanns/faiss {ratio:.2f}x (target <= 1.5x); objective adanns vs faiss "
                    f"{100 * rel:+.3f}% (target within 1%); lower objective is better"],
        "tables": [{"title": f"k-means k={k}, niter={niter}, seed={seed}, 1 thread", "columns": cols,
                    "rows": rows}],
    }


def section_parity(c, args, builds: Builds) -> dict:
    print("\n== parity: IVF, same configuration (cluster/search dim 384, no re-rank) ==", flush=True)
    q, nq = c.queries, c.queries.shape[0]
    singles = [q[i:i + 1] for i in range(min(args.single_queries, nq))]
    rows, build_rows = [], []
    for nlist in args.parity_nlists:
        ivf = builds.adanns_ivf(nlist, c.dim)
        fe = builds.faiss_ivf(nlist)
        ba, bf = builds.build_times[("adanns", nlist, c.dim)], builds.build_times[("faiss", nlist)]
        build_rows.append([nlist, ba["train_s"], bf["train_s"], ba["train_s"] / bf["train_s"], ba["add_s"],
                           bf["add_s"], ba["add_s"] / bf["add_s"]])
        for nprobe in args.parity_nprobes:
            ra = ivf.search(q, K, nprobe=nprobe, threads=THREADS)
            _, f_ids = faiss_search(fe, q, nprobe)
            t = time_interleaved({"adanns": lambda: ivf.search(q, K, nprobe=nprobe, threads=THREADS),
                                  "faiss": lambda: faiss_search(fe, q, nprobe)}, repeats=args.repeats)
            qa, qf = t["adanns"].rate(nq), t["faiss"].rate(nq)

            def loop_a():
                for s in singles:
                    ivf.search(s, K, nprobe=nprobe, threads=THREADS)

            def loop_f():
                for s in singles:
                    faiss_search(fe, s, nprobe)

            t1 = time_interleaved({"adanns": loop_a, "faiss": loop_f}, repeats=args.repeats)
            sa, sf = t1["adanns"].rate(len(singles)), t1["faiss"].rate(len(singles))
            rows.append([nlist, nprobe, recall_at(ra.ids, c.gt), recall_at(f_ids, c.gt),
                         float(ra.mflops.mean()), float(faiss_mflops(fe, q, nprobe).mean()), qa, qf, qa / qf,
                         sa, sf, sa / sf])
            print(f"  nlist {nlist:5d} nprobe {nprobe:3d}: recall {rows[-1][2]:.4f} / {rows[-1][3]:.4f}  "
                  f"batch QPS {qa:8.0f} / {qf:8.0f} ({qa / qf:.2f}x)  single QPS {sa:7.0f} / {sf:7.0f} "
                  f"({sa / sf:.2f}x)", flush=True)
    cols = ["nlist", "nprobe", "recall@10 adanns", "recall@10 faiss", "MFLOPs/q adanns", "MFLOPs/q faiss",
            "QPS adanns", "QPS faiss", "QPS ratio", "1-query QPS adanns", "1-query QPS faiss", "1-query ratio"]
    bcols = ["nlist", "train s adanns", "train s faiss", "train ratio", "add s adanns", "add s faiss",
             "add ratio"]
    title = f"Same configuration, k=10, 1 thread: batch of {nq} queries and {len(singles)} single-query calls"
    print_table("parity: " + title, cols, rows)
    print_table("parity: build time (train = k-means niter %d on the base; add = assign + store)" % args.niter,
                bcols, build_rows)
    ratios = [r[8] for r in rows]
    ratios1 = [r[11] for r in rows]
    slower = [f"nlist {r[0]} nprobe {r[1]} batch: {r[8]:.2f}x" for r in rows if r[8] < 1.0]
    slower += [f"nlist {r[0]} nprobe {r[1]} one query at a time: {r[11]:.2f}x" for r in rows if r[11] < 1.0]
    return {
        "question": "IVF at the same configuration: recall and QPS of adanns vs faiss IndexIVFFlat",
        "params": {"nlists": args.parity_nlists, "nprobes": args.parity_nprobes, "niter": args.niter,
                   "seed": args.seed, "repeats": args.repeats},
        "summary": [f"QPS ratio adanns/faiss: min {min(ratios):.2f}x, median {float(np.median(ratios)):.2f}x, "
                    f"max {max(ratios):.2f}x (batch of {nq})",
                    f"one query at a time ({len(singles)} calls): min {min(ratios1):.2f}x, median "
                    f"{float(np.median(ratios1)):.2f}x, max {max(ratios1):.2f}x"]
                   + ([f"adanns slower at {', '.join(slower)}"] if slower else []),
        "tables": [{"title": title, "columns": cols, "rows": rows},
                   {"title": "Build time, 1 thread", "columns": bcols, "rows": build_rows}],
    }


# ------------------------------------------------------------------------------------ adaptive sweep
def pareto(points: list[dict], slack: float = 1.0) -> list[dict]:
    """Points not dominated (higher-or-equal recall and QPS > slack x theirs) by another point."""
    out = []
    for p in points:
        if not any(o is not p and o["recall"] >= p["recall"] and o["qps"] > slack * p["qps"]
                   and (o["recall"] > p["recall"] or o["qps"] > p["qps"]) for o in points):
            out.append(p)
    return sorted(out, key=lambda p: p["recall"])


class Sweep:
    """Runs chains of configurations (nprobe ascending) with the pruning rules shared by both systems:
    a configuration is skipped when its predicted MFLOPs exceed min(brute force, 3 x the cheapest
    configuration already reaching 0.95); a chain stops once recall >= stop_recall or doubling nprobe
    gains < 0.002 recall."""

    def __init__(self, system: str, brute_mflops: float, stop_recall: float):
        self.system, self.brute, self.stop = system, brute_mflops, stop_recall
        self.best95_mflops = math.inf
        self.points: list[dict] = []
        self.skipped = 0
        self.searches = 0

    def bound(self) -> float:
        return min(self.brute, 3 * self.best95_mflops)

    def chain(self, config: dict, nprobes, estimate, run, q, gt) -> list[dict]:
        """estimate(nprobe) -> predicted MFLOPs/query; run(nprobe) -> (ids, measured mflops array)."""
        made, prev = [], None
        for i, nprobe in enumerate(nprobes):
            if estimate(nprobe) > self.bound():
                self.skipped += len(nprobes) - i
                break
            t0 = time.perf_counter()
            ids, mflops = run(nprobe)
            dt = time.perf_counter() - t0
            self.searches += 1
            p = {**config, "nprobe": nprobe, "recall": recall_at(ids, gt), "mflops": float(np.mean(mflops)),
                 "qps": q.shape[0] / dt, "timing": "1 run"}
            made.append(p)
            self.points.append(p)
            if p["recall"] >= 0.95:
                self.best95_mflops = min(self.best95_mflops, p["mflops"])
            if p["recall"] >= self.stop or (prev is not None and p["recall"] - prev < 0.002):
                self.skipped += len(nprobes) - i - 1
                break
            prev = p["recall"]
        return made

    def retime(self, made: list[dict], run, nq: int, repeats: int) -> None:
        """Re-times best-of-`repeats` the points of this index near its own Pareto frontier (within 10%)
        with recall >= 0.85: the global frontier is a subset of the union of these."""
        for p in pareto(made, slack=1.1):
            if p["recall"] >= 0.85:
                t = time_fn(lambda: run(p["nprobe"]), repeats=repeats)
                p["qps"], p["timing"] = t.rate(nq), f"best of {repeats}"

    def best(self, target: float):
        ok = [p for p in self.points if p["recall"] >= target]
        return max(ok, key=lambda p: p["qps"]) if ok else None


POINT_COLUMNS = ["nlist", "d_c", "d_s", "rerank_k", "nprobe", "recall", "mflops", "qps", "timing"]


def compact_points(points: list[dict]) -> dict:
    """Every configuration searched, as columns + rows (rounded) to keep the JSON small."""
    def cell(p, col):
        v = p[col]
        return round(v, 4) if col in ("recall", "mflops") else round(v, 1) if col == "qps" else v
    return {"columns": POINT_COLUMNS, "rows": [[cell(p, col) for col in POINT_COLUMNS] for p in points]}


def section_adaptive(c, args, builds: Builds) -> dict:
    print("\n== adaptive: fastest configuration at recall@10 >= 0.95 / 0.90 ==", flush=True)
    q, gt, nq, d = c.queries, c.gt, c.queries.shape[0], c.dim
    brute = c.base.shape[0] * d / 1e6
    t_start = time.perf_counter()
    keep = set()  # indexes holding a current best; the others are freed once swept
    swept = set()

    def refresh_keep(sweep: Sweep, key_of):
        keep.difference_update({k for k in keep if k[0] == sweep.system})
        for target in TARGETS:
            b = sweep.best(target)
            if b is not None:
                keep.add((sweep.system, key_of(b)))
        if sweep.system == "faiss":
            for nlist in [n for n in builds.faiss if ("faiss", n) in swept and ("faiss", n) not in keep]:
                builds.drop_faiss(nlist)
        else:
            for key in [k for k in builds.adanns if ("adanns", k) in swept and ("adanns", k) not in keep]:
                builds.drop_adanns(key)

    # faiss: IndexIVFFlat over nlist x nprobe
    fs = Sweep("faiss", brute, args.stop_recall)
    for nlist in args.faiss_nlists:
        fe = builds.faiss_ivf(nlist)

        def run_f(nprobe, fe=fe):
            _, ids = faiss_search(fe, q, nprobe)
            return ids, faiss_mflops(fe, q, nprobe)

        made = fs.chain({"system": "faiss", "nlist": nlist, "d_c": d, "d_s": d, "rerank_k": 0}, args.nprobes,
                        lambda nprobe, fe=fe: float(faiss_mflops(fe, q, nprobe).mean()), run_f, q, gt)
        fs.retime(made, lambda nprobe, fe=fe: faiss_search(fe, q, nprobe), nq, args.repeats)
        swept.add(("faiss", nlist))
        refresh_keep(fs, lambda p: p["nlist"])
    print(f"  faiss: {fs.searches} configurations searched, {fs.skipped} pruned "
          f"({time.perf_counter() - t_start:.0f}s)", flush=True)

    # adanns: one index per (nlist, d_c); chains over (d_s, rerank_k), nprobe ascending
    s = Sweep("adanns", brute, args.stop_recall)
    for nlist in args.nlists:
        for dc in args.cluster_dims:
            ivf = builds.adanns_ivf(nlist, dc)
            made_here = []
            for ds in sorted(args.search_dims, reverse=True):
                for rk in args.rerank_ks:
                    if rk and ds >= d:
                        continue  # re-ranking with the dimensions already searched changes nothing
                    kw = dict(search_dim=ds, rerank_dim=d if rk else None, rerank_k=rk if rk else None)

                    def run_a(nprobe, kw=kw, ivf=ivf):
                        r = ivf.search(q, K, nprobe=nprobe, threads=THREADS, **kw)
                        return r.ids, r.mflops

                    made_here += s.chain(
                        {"system": "adanns", "nlist": nlist, "d_c": dc, "d_s": ds, "rerank_k": rk}, args.nprobes,
                        lambda nprobe, kw=kw, ivf=ivf: ivf.estimate_mflops(K, nprobe, **kw), run_a, q, gt)
            by_kw = {}
            for p in pareto(made_here, slack=1.1):
                kw = dict(search_dim=p["d_s"], rerank_dim=d if p["rerank_k"] else None,
                          rerank_k=p["rerank_k"] or None)
                by_kw.setdefault(tuple(kw.items()), (kw, []))[1].append(p)
            for kw, pts in by_kw.values():
                s.retime(pts, lambda nprobe, kw=kw, ivf=ivf: ivf.search(q, K, nprobe=nprobe, threads=THREADS,
                                                                        **kw), nq, args.repeats)
            swept.add(("adanns", (nlist, dc)))
            refresh_keep(s, lambda p: (p["nlist"], p["d_c"]))
            print(f"  adanns nlist {nlist} d_c {dc}: {len(made_here)} configurations, best95 "
                  f"{s.best95_mflops:.3g} MFLOPs ({time.perf_counter() - t_start:.0f}s)", flush=True)
    print(f"  adanns: {s.searches} configurations searched, {s.skipped} pruned", flush=True)

    # head to head: the two winners at each target, timed in turns
    heads, summary = [], []
    for target in TARGETS:
        ba, bf = s.best(target), fs.best(target)
        if ba is None or bf is None:
            summary.append(f"recall >= {target}: not reached by {'adanns' if ba is None else 'faiss'}")
            heads.append([target] + [None] * 9)
            continue
        ivf = builds.adanns_ivf(ba["nlist"], ba["d_c"])
        fe = builds.faiss_ivf(bf["nlist"])
        kw = dict(search_dim=ba["d_s"], rerank_dim=d if ba["rerank_k"] else None, rerank_k=ba["rerank_k"] or None)
        t = time_interleaved({"adanns": lambda: ivf.search(q, K, nprobe=ba["nprobe"], threads=THREADS, **kw),
                              "faiss": lambda: faiss_search(fe, q, bf["nprobe"])}, repeats=args.head_repeats)
        qa, qf = t["adanns"].rate(nq), t["faiss"].rate(nq)
        cfg_a = f"nlist {ba['nlist']} d_c {ba['d_c']} d_s {ba['d_s']} rerank_k {ba['rerank_k']} nprobe {ba['nprobe']}"
        cfg_f = f"nlist {bf['nlist']} nprobe {bf['nprobe']}"
        heads.append([target, cfg_a, ba["recall"], ba["mflops"], qa, cfg_f, bf["recall"], bf["mflops"], qf,
                      qa / qf])
        summary.append(f"recall@10 >= {target}: adanns {qa:,.0f} QPS ({cfg_a}) vs faiss {qf:,.0f} QPS ({cfg_f}): "
                       f"{qa / qf:.2f}x" + (" (target >= 2.5x)" if target == 0.95 else ""))
    for line in summary:
        print("  " + line)

    fcols = ["nlist", "d_c", "d_s", "rerank_k", "nprobe", "recall@10", "MFLOPs/q", "QPS", "timing"]

    def frontier_rows(sweep):
        return [[p["nlist"], p["d_c"], p["d_s"], p["rerank_k"], p["nprobe"], p["recall"], p["mflops"], p["qps"],
                 p["timing"]] for p in pareto(sweep.points)]

    fa, ff = frontier_rows(s), frontier_rows(fs)
    print_table("adanns Pareto frontier (recall@10 vs QPS)", fcols, fa)
    print_table("faiss IndexIVFFlat Pareto frontier (recall@10 vs QPS)", fcols, ff)
    hcols = ["recall target", "adanns config", "adanns recall", "adanns MFLOPs/q", "adanns QPS", "faiss config",
             "faiss recall", "faiss MFLOPs/q", "faiss QPS", "QPS ratio"]
    print_table("head to head (best of %d, in turns)" % args.head_repeats, hcols, heads)
    builds_rows = [[k[0], k[1], k[2] if len(k) > 2 else d, v["train_s"], v["add_s"]]
                   for k, v in builds.build_times.items()]
    return {
        "question": "fastest configuration reaching recall@10 >= 0.95 / 0.90: adanns (adaptive) vs faiss IVFFlat",
        "params": {"nlists": args.nlists, "cluster_dims": args.cluster_dims, "search_dims": args.search_dims,
                   "rerank_ks": args.rerank_ks, "rerank_dim": d, "nprobes": args.nprobes,
                   "faiss_nlists": args.faiss_nlists, "stop_recall": args.stop_recall, "repeats": args.repeats,
                   "head_repeats": args.head_repeats, "niter": args.niter, "seed": args.seed,
                   "pruning": "skip when predicted MFLOPs > min(brute force, 3x cheapest >= 0.95); stop a chain at "
                              "recall >= stop_recall or gain < 0.002 per nprobe doubling"},
        "searched": {"adanns": s.searches, "faiss": fs.searches},
        "pruned": {"adanns": s.skipped, "faiss": fs.skipped},
        "seconds": time.perf_counter() - t_start,
        "points": {"adanns": compact_points(s.points), "faiss": compact_points(fs.points)},
        "build_times": [{"system": r[0], "nlist": r[1], "d_c": r[2], "train_s": r[3], "add_s": r[4]}
                        for r in builds_rows],
        "summary": summary,
        "tables": [{"title": "Head to head at each recall target (best of %d, timed in turns)" % args.head_repeats,
                    "columns": hcols, "rows": heads},
                   {"title": "adanns Pareto frontier", "columns": fcols, "rows": fa},
                   {"title": "faiss IndexIVFFlat Pareto frontier", "columns": fcols, "rows": ff}],
    }


# ------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_data_arg(ap)
    ap.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated (default: all)")
    ap.add_argument("--quick", action="store_true", help="small grids, k-means k=256 niter 10 (a few minutes)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats, best kept (default 3)")
    ap.add_argument("--head-repeats", type=int, default=5, help="repeats of the head-to-head (default 5)")
    ap.add_argument("--kmeans-repeats", type=int, default=1, help="k-means runs per system (default 1)")
    ap.add_argument("--single-queries", type=int, default=200, help="queries in the one-at-a-time loop")
    ap.add_argument("--niter", type=int, default=20, help="k-means iterations for IVF training (both)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stop-recall", type=float, default=None,
                    help="stop an nprobe chain at this recall (default 0.98; quick 0.96)")
    for name in ("parity_nlists", "parity_nprobes", "nlists", "cluster_dims", "search_dims", "rerank_ks",
                 "nprobes", "faiss_nlists"):
        ap.add_argument("--" + name.replace("_", "-"), type=ints, default=None, help="comma-separated override")
    ap.add_argument("--kmeans-k", type=int, default=None)
    ap.add_argument("--kmeans-niter", type=int, default=None)
    ap.add_argument("--name", default=None, help="results name (default ivf_vs_faiss, ivf_vs_faiss_quick)")
    ap.add_argument("--no-write", action="store_true", help="print only, write no results files")
    args = ap.parse_args(argv)

    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.stop_recall is None:
        args.stop_recall = 0.96 if args.quick else 0.98
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    name = args.name or ("ivf_vs_faiss_quick" if args.quick else "ivf_vs_faiss")

    faiss.omp_set_num_threads(1)
    c = load_corpus(args.data)
    print(f"corpus {c.name}: base {c.base.shape}, queries {c.queries.shape}; {cpu_summary(machine_info())}")
    # indexes the parity section builds stay for the adaptive sweep, which frees what it does not need
    builds = Builds(c, args.niter, args.seed)
    payload, seconds = {}, {}
    for section in SECTIONS:
        if section not in only:
            continue
        t0 = time.perf_counter()
        if section == "flat":
            payload[section] = section_flat(c, args)
        elif section == "kmeans":
            payload[section] = section_kmeans(c, args)
        elif section == "parity":
            payload[section] = section_parity(c, args, builds)
        else:
            payload[section] = section_adaptive(c, args, builds)
        seconds[section] = time.perf_counter() - t0
        payload[section]["section_seconds"] = seconds[section]
        payload[section]["quick"] = args.quick
        print(f"  [{section}: {seconds[section]:.0f}s]", flush=True)
        if not args.no_write:  # write after every section so a long run keeps what it finished
            jpath, mpath = write_results(name, {section: payload[section]})
    if not args.no_write and payload:
        print(f"\nwrote {jpath} and {mpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
