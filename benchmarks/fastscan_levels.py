"""Is the AVX-512BW fast-scan kernel faster than the AVX2 one on this CPU? (wordnet-minilm, ip, 1 thread)

Both levels run in this process, timed in turns (avx2, avx512, avx2, ...) so that the load of a shared
machine hits both alike; the ratio is AVX2 time / AVX-512 time (> 1: AVX-512BW is faster).

Sections (``--only``, comma-separated; default all three):

  kernel      benchmarks/fastscan_kernel.cpp compiled against the Release core in build/ (what `make install`
              built) and run: fastscan_scan_many alone, codes in L2 (32k rows) and L3 (1M rows), 1/4/8
              queries per call, best of many short timings in turns. Skipped without g++ or build/.

  exhaustive  OPQIndex(nbits=4, opq=False, store_vectors=False) over the first 192 coordinates of the base
              tiled to --n codes: --nq queries in one call (the kernel's groups of queries sharing each load
              of codes: 4 on AVX-512BW, 2 on AVX2) and --single queries one call each (one query per load).
              Without a rotation the float tables are the same on every level, so the fast-scan kernel is
              the only level-dependent code: this is the kernel-to-kernel comparison. Both levels must
              return the same ids and scores bit for bit (checked).
  ivfopq      IVFOPQIndex(nbits=4) + re-ranking with the full vectors, the recall-0.95 configurations of
              pq_vs_faiss.py's ivfopq section. End to end: the rotation, coarse step and re-ranking kernels
              also change with the level, so this is what a user of the avx512 level gets.

Run from the repository root:
    .venv/bin/python benchmarks/fastscan_levels.py
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins BLAS/OpenMP to one thread before numpy loads)

import argparse
import glob
import shutil
import subprocess
import tempfile
import time

from pathlib import Path

import numpy as np

import adanns
from adanns import _core

from _common import (REPO_ROOT, add_data_arg, cpu_summary, load_corpus, machine_info, print_table, recall_at,
                     time_interleaved, write_results)

K = 10
THREADS = 1
SECTIONS = ("kernel", "exhaustive", "ivfopq")
LEVELS = ("avx2", "avx512")


def at_level(level: str, fn):
    def run():
        adanns.set_simd_level(level)
        return fn()
    return run


def kernel_names() -> dict:
    saved = adanns.simd_level()
    try:
        names = {}
        for level in LEVELS:
            adanns.set_simd_level(level)
            names[level] = _core.fastscan_kernel_name()
        return names
    finally:
        adanns.set_simd_level(saved)


def compare(fn, repeats: int) -> tuple[float, float, float, list[float]]:
    """Best time per level and the ratio avx2/avx512 of the best times, plus the per-round ratios (each
    round times both levels back to back: their median is the least disturbed by a burst of load)."""
    t = time_interleaved({lv: at_level(lv, fn) for lv in LEVELS}, repeats=repeats, warmup=1)
    a, b = t["avx2"], t["avx512"]
    rounds = [x / y for x, y in zip(a.runs, b.runs)]
    return a.best, b.best, a.best / b.best, rounds


def section_kernel(c, args) -> dict:
    libs = sorted(glob.glob(str(REPO_ROOT / "build" / "cp*" / "libadanns_core.a")),
                  key=lambda p: Path(p).stat().st_mtime)  # the newest build
    if not libs or not shutil.which("g++"):
        print("kernel: skipped (needs g++ and build/cp*/libadanns_core.a from `make install`)")
        return {"summary": ["skipped: no g++ or no Release core in build/"]}
    with tempfile.TemporaryDirectory() as tmp:
        exe = str(Path(tmp) / "fastscan_kernel")
        subprocess.run(["g++", "-O2", "-std=c++17", f"-I{REPO_ROOT / 'cpp' / 'include'}",
                        str(REPO_ROOT / "benchmarks" / "fastscan_kernel.cpp"), libs[-1], "-lpthread", "-o", exe],
                       check=True)
        out = subprocess.run([exe, str(args.kernel_rounds)], check=True, capture_output=True, text=True).stdout
    print(out)
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 8 and f[0].isdigit():
            lo, hi = f[7].split("-")
            rows.append([int(f[0]), int(f[1]), int(f[2]), float(f[3]), float(f[4]), float(f[5]), float(f[6]),
                         f"{lo}-{hi}"])
    table = {"title": f"fastscan_scan_many alone, 1 thread: AVX2 vs AVX-512BW kernel (G codes/s, best of "
                      f"{args.kernel_rounds} short timings in turns; ratio > 1: AVX-512BW faster)",
             "columns": ["m", "rows", "queries per call", "avx2 Gcodes/s", "avx512bw Gcodes/s", "ratio (best)",
                         "ratio (median round)", "round ratios min-max"], "rows": rows}
    return {"tables": [table], "core": libs[-1], "output": out}


def section_exhaustive(c, args) -> dict:
    d = 192
    reps = max(1, -(-args.n // c.base.shape[0]))
    xb = np.ascontiguousarray(np.tile(c.base[:, :d], (reps, 1))[: args.n])
    xt = np.ascontiguousarray(c.base[:32768, :d])
    q = np.ascontiguousarray(c.queries[: args.nq, :d])
    rows = []
    for m, pq_dim in args.configs:
        ix = adanns.OPQIndex(d, m, pq_dim, metric="ip", opq=False, nbits=4, store_vectors=False, seed=0)
        ix.train(xt, threads=THREADS, pq_niter=4)
        ix.add(xb, threads=THREADS)
        outs = {}
        for lv in LEVELS:
            adanns.set_simd_level(lv)
            outs[lv] = ix.search(q, K, threads=THREADS)
        same = bool(np.array_equal(outs["avx2"].ids, outs["avx512"].ids)
                    and np.array_equal(outs["avx2"].scores, outs["avx512"].scores))
        assert same, f"m={m}: the levels disagree"
        batch = compare(lambda: ix.search(q, K, threads=THREADS), args.repeats)
        qs = q[: args.single]
        single = compare(lambda: [ix.search(qs[i:i + 1], K, threads=THREADS) for i in range(len(qs))], args.repeats)
        ncodes = xb.shape[0]
        for mode, nq, (ta, tb, ratio, rounds) in (("batch", len(q), batch), ("one query per call", len(qs), single)):
            rows.append([m, pq_dim, (m + 1) // 2, mode, nq, round(ncodes * nq / ta / 1e9, 2),
                         round(ncodes * nq / tb / 1e9, 2), round(ratio, 3), round(float(np.median(rounds)), 3),
                         " ".join(f"{r:.2f}" for r in rounds), "yes" if same else "NO"])
            print_table(f"exhaustive m={m} {mode}", COLS_EX, rows[-1:])
    table = {"title": f"Exhaustive 4-bit fast-scan, {xb.shape[0]:,} codes, top-{K}, 1 thread: AVX2 kernel vs AVX-512BW "
                      f"kernel (G codes/s, best of {args.repeats} in turns; ratio = AVX2 time / AVX-512BW time, "
                      "> 1: AVX-512BW faster)",
             "columns": COLS_EX, "rows": rows}
    return {"tables": [table], "kernels": kernel_names()}


COLS_EX = ["m", "pq_dim", "pairs", "queries", "nq", "avx2 Gcodes/s", "avx512bw Gcodes/s", "ratio (best)",
           "ratio (median round)", "per-round ratios", "same results"]


def section_ivfopq(c, args) -> dict:
    d = c.dim
    rng = np.random.default_rng(0)  # the training sample pq_vs_faiss.py draws
    n = c.base.shape[0]
    xt = c.base if n <= args.train_points else np.ascontiguousarray(
        c.base[np.sort(rng.choice(n, args.train_points, replace=False))])
    nq = c.queries.shape[0]
    rows = []
    for m, pq_dim, nprobe, rk in args.ivf_configs:
        ix = adanns.IVFOPQIndex(d, args.nlist, args.cluster_dim, m=m, pq_dim=pq_dim, metric="ip", opq=True, nbits=4,
                                seed=0)
        ix.train(xt, threads=THREADS, opq_niter=args.opq_niter, max_train_points=args.train_points)
        ix.add(c.base, threads=THREADS)
        fn = lambda: ix.search(c.queries, K, nprobe=nprobe, rerank_k=rk, rerank_dim=d, threads=THREADS)  # noqa: E731
        recs = {}
        for lv in LEVELS:
            adanns.set_simd_level(lv)
            recs[lv] = recall_at(fn().ids, c.gt)
        ta, tb, ratio, rounds = compare(fn, args.repeats)
        rows.append([args.nlist, args.cluster_dim, m, pq_dim, nprobe, rk, round(recs["avx2"], 4),
                     round(recs["avx512"], 4), round(nq / ta), round(nq / tb), round(ratio, 3),
                     round(float(np.median(rounds)), 3), " ".join(f"{r:.2f}" for r in rounds)])
        print_table(f"ivfopq m={m} nprobe={nprobe}", COLS_IVF, rows[-1:])
    table = {"title": f"IVFOPQIndex(nbits=4) + re-rank, {nq:,} queries, top-{K}, 1 thread, whole pipeline at the avx2 "
                      f"vs avx512 level (QPS, best of {args.repeats} in turns; ratio > 1: avx512 faster)",
             "columns": COLS_IVF, "rows": rows}
    return {"tables": [table], "kernels": kernel_names()}


COLS_IVF = ["nlist", "d_c", "m", "pq_dim", "nprobe", "rerank_k", "recall avx2", "recall avx512", "avx2 QPS",
            "avx512 QPS", "ratio (best)", "ratio (median round)", "per-round ratios"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--kernel-rounds", type=int, default=31)
    ap.add_argument("--n", type=int, default=1_000_000, help="codes in the exhaustive scan")
    ap.add_argument("--nq", type=int, default=200, help="queries in the batch call")
    ap.add_argument("--single", type=int, default=50, help="queries searched one call each")
    ap.add_argument("--configs", default="16:192,30:180,32:192,64:192",
                    help="m:pq_dim of the exhaustive scan (30: an odd number of pairs, the 256-bit tail)")
    ap.add_argument("--ivf-configs", default="96:192:64:50,64:128:64:50", help="m:pq_dim:nprobe:rerank_k")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--cluster-dim", type=int, default=128)
    ap.add_argument("--opq-niter", type=int, default=10)
    ap.add_argument("--train-points", type=int, default=32768)
    ap.add_argument("--name", default="fastscan_levels")
    args = ap.parse_args()
    args.configs = [tuple(int(v) for v in s.split(":")) for s in args.configs.split(",") if s]
    args.ivf_configs = [tuple(int(v) for v in s.split(":")) for s in args.ivf_configs.split(",") if s]
    missing = [lv for lv in LEVELS if lv not in adanns.available_simd_levels()]
    if missing:
        raise SystemExit(f"this CPU lacks the SIMD level(s) {', '.join(missing)}: nothing to compare")
    c = load_corpus(args.data)
    print(cpu_summary(machine_info()), "| fast-scan kernels:", kernel_names(), flush=True)
    fns = {"kernel": section_kernel, "exhaustive": section_exhaustive, "ivfopq": section_ivfopq}
    saved = adanns.simd_level()
    try:
        for name in [s for s in args.only.split(",") if s]:
            t0 = time.perf_counter()
            body = fns[name](c, args)
            body["seconds"] = round(time.perf_counter() - t0, 1)
            write_results(args.name, {name: body})
            print(f"[{name}: {body['seconds']} s]", flush=True)
    finally:
        adanns.set_simd_level(saved)


if __name__ == "__main__":
    main()
