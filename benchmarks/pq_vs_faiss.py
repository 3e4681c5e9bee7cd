"""Do PQ codes on a Matryoshka prefix beat rigid OPQ? (wordnet-minilm, metric ip, 1 thread, k=10)

Sections (``--only``, comma-separated; default all, run in this order):

  prefix   For every byte budget m in {8, 16, 32, 48, 64}: faiss OPQ{m},PQ{m} on all 384 dims vs adanns
           OPQIndex(m, pq_dim) over a grid of prefixes pq_dim (multiples of 2m, and 384 = rigid OPQ).
           recall@10 of the codes alone and after re-ranking the top-100 with the full vectors, and
           MFLOPs/query. Target: adanns' best prefix >= faiss at every m; and whether 32 bytes on a
           prefix reach faiss' 64-byte recall (the AdANNS paper's headline).
  adc      ADC scan throughput (codes/s), 1,000 queries x >= 1M codes, 8-bit codes, m in {8, 16, 32}:
           adanns OPQIndex(opq=False, store_vectors=False) vs faiss IndexPQ, both on the first 192
           coordinates. Target >= 1.0x. Then 4-bit fast-scan, m in {16, 32, 64}: adanns OPQIndex(nbits=4)
           vs faiss IndexPQFastScan (PQ{m}x4fs). Target >= 1.0x.
  ivfopq   Fastest configuration reaching recall@10 >= 0.95: adanns IVFOPQIndex + re-ranking (grid over
           cluster_dim, pq_dim, m, nprobe, rerank_k) vs faiss OPQ{m},IVF{nlist},PQ{m} wrapped in
           IndexRefineFlat (grid over m, nprobe, k_factor). Target: >= 2x QPS. Prints both frontiers.
           adanns' grid includes nbits=4 (fast-scan) codes; faiss' IVF fast-scan (PQ{m}x4fs + refine) is run
           too and reported as a separate, clearly labelled extra comparison.
  train    OPQ training time, 100k x 384, m = 32: adanns OPQIndex(384, 32, 384).train vs faiss OPQMatrix
           + IndexPQ training, same iteration counts (--train-niter OPQ outer iterations, 4 PQ iterations
           each, 40 for the first; --train-max-points training points). Target: <= 2x.

Both systems share the training sample and iteration counts in every section. QPS: best of --repeats.
Run from the repository root:
    .venv/bin/python benchmarks/pq_vs_faiss.py --only prefix
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins BLAS/OpenMP to one thread before numpy/faiss load)

import argparse
import time

import numpy as np

import adanns
import faiss

from _common import (add_data_arg, cpu_summary, load_corpus, machine_info, print_table, recall_at, time_fn,
                     time_interleaved, write_results)

K = 10
THREADS = 1
SECTIONS = ("prefix", "adc", "ivfopq", "train")
BUDGETS = (8, 16, 32, 48, 64)


def sample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    if x.shape[0] <= n:
        return x
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(x[np.sort(rng.choice(x.shape[0], n, replace=False))])


def prefix_grid(m: int, dim: int, mult=(8, 16)) -> list[int]:
    """pq_dim candidates: a sparse subset of {2m, 4m, ..., 384} (default 8m and 16m: on a 2-core shared machine
    the run time is bounded by OPQ training) plus the full dimension (rigid OPQ)."""
    out = sorted({m * f for f in mult if m * f <= dim} | ({dim} if dim % m == 0 else set()))
    return out


def faiss_opq(d: int, m: int, xt: np.ndarray, niter: int):
    index = faiss.index_factory(d, f"OPQ{m},PQ{m}", faiss.METRIC_INNER_PRODUCT)
    opq = faiss.downcast_VectorTransform(index.chain.at(0))
    opq.niter = niter
    opq.max_train_points = xt.shape[0]
    index.train(xt)
    return index


def refine_recall(ids100: np.ndarray, base: np.ndarray, queries: np.ndarray, gt: np.ndarray) -> float:
    """recall@10 after re-scoring a top-100 shortlist with the full vectors (exact inner products)."""
    out = np.empty((ids100.shape[0], K), np.int64)
    for i, row in enumerate(ids100):
        row = row[row >= 0]
        s = base[row] @ queries[i]
        out[i] = row[np.argsort(-s, kind="stable")[:K]]
    return recall_at(out, gt)


# --------------------------------------------------------------------------------------------- prefix
def section_prefix(c, args) -> dict:
    d = c.dim
    xt = sample(c.base, args.train_points)
    rows, best = [], {}
    faiss_rec = {}
    for m in args.budgets:
        t0 = time.perf_counter()
        fi = faiss_opq(d, m, xt, args.opq_niter)
        fi.add(c.base)
        _, fids = fi.search(c.queries, 100)
        f_raw, f_rr = recall_at(fids, c.gt), refine_recall(fids, c.base, c.queries, c.gt)
        n = c.base.shape[0]
        f_mf = (d * d + 256 * d + n * m) * 1e-6
        faiss_rec[m] = (f_raw, f_rr)
        rows.append(["faiss", m, d, round(f_raw, 4), round(f_rr, 4), round(f_mf, 2), round(f_mf + 100 * d * 1e-6, 2),
                     round(time.perf_counter() - t0, 1)])
        print_table(f"m={m} faiss OPQ{m},PQ{m}", ["system", "m", "pq_dim", "recall@10", "rr100", "MFLOPs", "MFLOPs rr",
                                                   "build s"], rows[-1:])
        for pq_dim in prefix_grid(m, d, args.prefix_mults):
            t0 = time.perf_counter()
            ix = adanns.OPQIndex(d, m, pq_dim, metric="ip", opq=True, seed=0)
            ix.train(xt, threads=THREADS, opq_niter=args.opq_niter, max_train_points=args.train_points)
            ix.add(c.base, threads=THREADS)
            r = ix.search(c.queries, 100, threads=THREADS)
            rr = ix.search(c.queries, K, rerank_k=100, rerank_dim=d, threads=THREADS)
            a_raw, a_rr = recall_at(r.ids, c.gt), recall_at(rr.ids, c.gt)
            rows.append(["adanns", m, pq_dim, round(a_raw, 4), round(a_rr, 4), round(float(r.mflops.mean()), 2),
                         round(float(rr.mflops.mean()), 2), round(time.perf_counter() - t0, 1)])
            print_table(f"m={m} adanns OPQIndex pq_dim={pq_dim}", ["system", "m", "pq_dim", "recall@10", "rr100",
                                                                   "MFLOPs", "MFLOPs rr", "build s"], rows[-1:])
            if m not in best or a_raw > best[m][1]:
                best[m] = (pq_dim, a_raw, a_rr)
    cols = ["system", "m (bytes)", "pq_dim", "recall@10 (codes)", "recall@10 rr100", "MFLOPs/q", "MFLOPs/q rr100",
            "build s"]
    summary_rows, summary = [], []
    for m in args.budgets:
        pq_dim, a_raw, a_rr = best[m]
        f_raw, f_rr = faiss_rec[m]
        ok = a_raw >= f_raw
        summary_rows.append([m, pq_dim, round(a_raw, 4), round(f_raw, 4), round(a_rr, 4), round(f_rr, 4),
                             "met" if ok else "NOT met"])
    if 32 in best and 64 in faiss_rec:
        headline = best[32][1] >= faiss_rec[64][0]
        summary.append(f"32 bytes on a prefix (pq_dim {best[32][0]}): recall@10 {best[32][1]:.4f} vs faiss 64 bytes "
                       f"{faiss_rec[64][0]:.4f} -> {'reached' if headline else 'NOT reached'} (codes alone); "
                       f"after re-ranking top-100: {best[32][2]:.4f} vs {faiss_rec[64][1]:.4f}")
    summary.append(f"training: {xt.shape[0]} points, OPQ {args.opq_niter} outer iterations for both systems")
    tables = [
        {"title": "Best prefix per byte budget vs faiss rigid OPQ (recall@10 of the codes; target: adanns >= faiss)",
         "columns": ["m", "best pq_dim", "adanns recall@10", "faiss recall@10", "adanns rr100", "faiss rr100",
                     "target"], "rows": summary_rows},
        {"title": "Every configuration", "columns": cols, "rows": rows},
    ]
    print_table("best prefix per budget", tables[0]["columns"], summary_rows)
    for s in summary:
        print(s)
    return {"tables": tables, "summary": summary, "best": {str(k): v for k, v in best.items()},
            "faiss": {str(k): v for k, v in faiss_rec.items()}}


# ------------------------------------------------------------------------------------------------ adc
def section_adc(c, args) -> dict:
    d = 192
    reps = max(1, -(-args.adc_n // c.base.shape[0]))
    xb = np.ascontiguousarray(np.tile(c.base[:, :d], (reps, 1))[: args.adc_n])
    xt = sample(c.base[:, :d], 32768)
    q = np.ascontiguousarray(c.queries[: args.adc_nq, :d])
    rows = []
    for m in args.adc_ms:
        fi = faiss.IndexPQ(d, m, 8, faiss.METRIC_INNER_PRODUCT)
        fi.pq.cp.niter = 4
        fi.train(xt)
        fi.add(xb)
        ix = adanns.OPQIndex(d, m, d, metric="ip", opq=False, store_vectors=False)
        ix.train(xt, threads=THREADS, pq_niter=4)
        ix.add(xb, threads=THREADS)
        ta = time_fn(lambda: ix.search(q, K, threads=THREADS), repeats=args.repeats)
        tf = time_fn(lambda: fi.search(q, K), repeats=args.repeats)
        n = xb.shape[0] * q.shape[0]
        rows.append([m, xb.shape[0], q.shape[0], round(n / ta.best / 1e6, 1), round(n / tf.best / 1e6, 1),
                     round(tf.best / ta.best, 2), "met" if tf.best >= ta.best else "NOT met"])
        print_table(f"ADC m={m}", ["m", "codes", "queries", "adanns Mcodes/s", "faiss Mcodes/s", "ratio", "target"],
                    rows[-1:])
    tables = [{"title": "ADC scan throughput, 8-bit codes, top-10, 1 thread (target ratio >= 1.0)",
               "columns": ["m", "codes", "queries", "adanns Mcodes/s", "faiss IndexPQ Mcodes/s",
                           "adanns/faiss", "target"], "rows": rows}]
    # 4-bit fast-scan: adanns OPQIndex(nbits=4) vs faiss IndexPQFastScan (PQ{m}x4fs), same data and queries.
    rows4 = []
    for m in args.adc4_ms:
        fi = faiss.IndexPQFastScan(d, m, 4, faiss.METRIC_INNER_PRODUCT)
        fi.pq.cp.niter = 4
        fi.train(xt)
        fi.add(xb)
        ix = adanns.OPQIndex(d, m, d, metric="ip", opq=False, nbits=4, store_vectors=False)
        ix.train(xt, threads=THREADS, pq_niter=4)
        ix.add(xb, threads=THREADS)
        t = time_interleaved({"adanns": lambda: ix.search(q, K, threads=THREADS), "faiss": lambda: fi.search(q, K)},
                             repeats=args.repeats)
        ta, tf = t["adanns"].best, t["faiss"].best
        n = xb.shape[0] * q.shape[0]
        rows4.append([m, xb.shape[0], q.shape[0], round(n / ta / 1e6, 1), round(n / tf / 1e6, 1), round(tf / ta, 2),
                      "met" if tf >= ta else "NOT met"])
        print_table(f"ADC 4-bit fast-scan m={m}", ["m", "codes", "queries", "adanns Mcodes/s", "faiss Mcodes/s",
                                                   "ratio", "target"], rows4[-1:])
    if rows4:
        tables.append({"title": "ADC scan throughput, 4-bit fast-scan, top-10, 1 thread: adanns OPQIndex(nbits=4) vs "
                                "faiss IndexPQFastScan PQ{m}x4fs (target ratio >= 1.0)",
                       "columns": ["m", "codes", "queries", "adanns Mcodes/s", "faiss PQ{m}x4fs Mcodes/s",
                                   "adanns/faiss", "target"], "rows": rows4})
    return {"tables": tables}


# --------------------------------------------------------------------------------------------- ivfopq
def frontier(points: list) -> list:
    """Pareto frontier (recall up, QPS up) of (recall, qps, label, mflops) tuples."""
    out, best_qps = [], -1.0
    for p in sorted(points, key=lambda p: (-p[0], -p[1])):
        if p[1] > best_qps:
            out.append(p)
            best_qps = p[1]
    return out


def section_ivfopq(c, args) -> dict:
    d = c.dim
    xt = sample(c.base, args.train_points)
    nq = c.queries.shape[0]
    apoints, fpoints = [], []
    for nlist in args.nlists:
        for dc in args.cluster_dims:
            for m, pq_dim, nbits in args.codes:
                ix = adanns.IVFOPQIndex(d, nlist, dc, m=m, pq_dim=pq_dim, metric="ip", opq=True, nbits=nbits, seed=0)
                ix.train(xt, threads=THREADS, opq_niter=args.opq_niter, max_train_points=args.train_points)
                ix.add(c.base, threads=THREADS)
                for nprobe in args.nprobes:
                    for rk in args.rerank_ks:
                        fn = lambda ix=ix, nprobe=nprobe, rk=rk: ix.search(c.queries, K, nprobe=nprobe, rerank_k=rk,
                                                                          rerank_dim=d, threads=THREADS)
                        res = fn()
                        rec = recall_at(res.ids, c.gt)
                        t = time_fn(fn, repeats=1)
                        apoints.append((rec, nq / t.best, f"nlist={nlist} d_c={dc} m={m} pq_dim={pq_dim} "
                                        f"nbits={nbits} nprobe={nprobe} rerank_k={rk}", float(res.mflops.mean()), fn))
                print(f"adanns nlist={nlist} d_c={dc} m={m} pq_dim={pq_dim} nbits={nbits}: best recall "
                      f"{max(p[0] for p in apoints):.4f}", flush=True)
    # The peer named by the target (8-bit PQ, `faiss_ms`), then faiss' own IVF fast-scan (PQ{m}x4fs,
    # `faiss_fs_ms`) as an extra, separately reported comparison.
    xpoints = []
    for nlist in args.nlists:
        for m, fs in [(m, False) for m in args.faiss_ms] + [(m, True) for m in args.faiss_fs_ms]:
            code = f"PQ{m}x4fs" if fs else f"PQ{m}"
            points = xpoints if fs else fpoints
            base = faiss.index_factory(d, f"OPQ{m},IVF{nlist},{code}", faiss.METRIC_INNER_PRODUCT)
            faiss.downcast_VectorTransform(base.chain.at(0)).niter = args.opq_niter
            faiss.downcast_VectorTransform(base.chain.at(0)).max_train_points = xt.shape[0]
            fi = faiss.IndexRefineFlat(base)
            fi.train(xt)
            fi.add(c.base)
            ivf = faiss.extract_index_ivf(base)
            sizes = np.array([ivf.invlists.list_size(i) for i in range(nlist)], dtype=np.float64)
            for nprobe in args.nprobes:
                for kf in args.k_factors:
                    ivf.nprobe = nprobe
                    fi.k_factor = kf

                    # Index objects bound now: the winners are re-timed after later builds rebind fi/ivf.
                    def fn(nprobe=nprobe, kf=kf, fi=fi, ivf=ivf):
                        ivf.nprobe = nprobe
                        fi.k_factor = kf
                        return fi.search(c.queries, K)
                    _, ids = fn()
                    rec = recall_at(ids, c.gt)
                    t = time_fn(fn, repeats=1)
                    rows_scanned = nprobe * (sizes ** 2).sum() / sizes.sum()
                    mf = (d * d + nlist * d + (16 if fs else 256) * d + rows_scanned * m + K * kf * d) * 1e-6
                    points.append((rec, nq / t.best, f"OPQ{m},IVF{nlist},{code} nprobe={nprobe} k_factor={kf}", mf, fn))
            print(f"faiss nlist={nlist} {code}: best recall {max(p[0] for p in points):.4f}", flush=True)

    def winner(points, target):
        ok = [p for p in points if p[0] >= target]
        if not ok:
            return None
        cands = sorted(ok, key=lambda p: -p[1])[:4]  # re-time the fastest few, best of --repeats
        timed = [(p, time_fn(p[4], repeats=args.repeats).best) for p in cands]
        p, t = min(timed, key=lambda pt: pt[1])
        return (p[0], nq / t, p[2], p[3])

    summary, tables = [], []
    for target in (0.95, 0.90):
        wa, wf = winner(apoints, target), winner(fpoints, target)
        if wa and wf:
            ratio = wa[1] / wf[1]
            summary.append(f"recall >= {target}: adanns {wa[1]:.0f} QPS ({wa[2]}, recall {wa[0]:.4f}, "
                           f"{wa[3]:.2f} MFLOPs) vs faiss {wf[1]:.0f} QPS ({wf[2]}, recall {wf[0]:.4f}, "
                           f"{wf[3]:.2f} MFLOPs): {ratio:.2f}x"
                           + (f" -> target 2x {'met' if ratio >= 2 else 'NOT met'}" if target == 0.95 else ""))
        else:
            summary.append(f"recall >= {target}: adanns {'reached' if wa else 'not reached'}, faiss "
                           f"{'reached' if wf else 'not reached'}")
    extra = []
    for target in (0.95, 0.90):
        wa, wx = winner(apoints, target), winner(xpoints, target)
        if wa and wx:
            extra.append(f"EXTRA (not the target's peer) recall >= {target}: adanns {wa[1]:.0f} QPS ({wa[2]}) vs faiss "
                         f"IVF fast-scan {wx[1]:.0f} QPS ({wx[2]}, recall {wx[0]:.4f}): {wa[1] / wx[1]:.2f}x")
        elif xpoints:
            extra.append(f"EXTRA recall >= {target}: adanns {'reached' if wa else 'not reached'}, faiss IVF fast-scan "
                         f"{'reached' if wx else 'not reached'}")
    summary += extra
    named = [("adanns IVFOPQIndex + re-rank", apoints), ("faiss OPQ,IVF,PQ + IndexRefineFlat", fpoints)]
    if xpoints:
        named.append(("EXTRA faiss OPQ,IVF,PQx4fs (IVF fast-scan) + IndexRefineFlat", xpoints))
    for name, pts in named:
        fr = frontier([p[:4] for p in pts])
        tables.append({"title": f"Frontier: {name} (single timing per point)",
                       "columns": ["recall@10", "QPS", "MFLOPs/q", "configuration"],
                       "rows": [[round(p[0], 4), round(p[1], 1), round(p[3], 3), p[2]] for p in fr]})
        print_table(tables[-1]["title"], tables[-1]["columns"], tables[-1]["rows"])
    for s in summary:
        print(s)
    return {"tables": tables, "summary": summary,
            "all_adanns": [p[:4] for p in apoints], "all_faiss": [p[:4] for p in fpoints],
            "all_faiss_fastscan_extra": [p[:4] for p in xpoints]}


# ---------------------------------------------------------------------------------------------- train
def section_train(c, args) -> dict:
    x = np.ascontiguousarray(c.base[:100_000])
    m, d = 32, c.dim
    niter, npts = args.train_niter, args.train_max_points
    times_a, times_f = [], []
    for _ in range(args.train_repeats):
        t0 = time.perf_counter()
        ix = adanns.OPQIndex(d, m, d, metric="ip", opq=True, seed=0)
        ix.train(x, threads=THREADS, opq_niter=niter, max_train_points=npts)  # 4 PQ iterations per update, 40 first
        times_a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        opq = faiss.OPQMatrix(d, m)  # niter_pq 4, niter_pq_0 40 (defaults)
        opq.niter = niter
        opq.max_train_points = npts
        opq.train(x)
        xr = opq.apply(sample(x, npts))
        pq = faiss.IndexPQ(d, m, 8, faiss.METRIC_INNER_PRODUCT)
        pq.train(xr)  # 25 k-means iterations (default)
        times_f.append(time.perf_counter() - t0)
        print(f"train: adanns {times_a[-1]:.1f} s, faiss {times_f[-1]:.1f} s", flush=True)
    ratio = min(times_a) / min(times_f)
    rows = [[m, x.shape[0], npts, niter, round(min(times_a), 2), round(min(times_f), 2), round(ratio, 2),
             "met" if ratio <= 2 else "NOT met"]]
    table = {"title": "OPQ training time, 100k x 384, m = 32, 1 thread (best of runs; target ratio <= 2)",
             "columns": ["m", "n", "training points", "OPQ iterations", "adanns s", "faiss OPQMatrix + PQ s",
                         "ratio", "target"], "rows": rows}
    print_table(table["title"], table["columns"], rows)
    return {"tables": [table], "runs_adanns_s": times_a, "runs_faiss_s": times_f,
            "summary": [f"both trained on {npts} of the 100k points with {niter} OPQ iterations (faiss defaults: "
                        "65,536 points, 50 iterations; cut to fit a shared 2-core machine)"]}


def ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budgets", type=ints, default=list(BUDGETS))
    ap.add_argument("--train-points", type=int, default=32768)
    ap.add_argument("--prefix-mults", type=ints, default=[8, 16], help="pq_dim = m x these (and the full dim)")
    ap.add_argument("--opq-niter", type=int, default=20)
    ap.add_argument("--adc-n", type=int, default=1_000_000)
    ap.add_argument("--adc-nq", type=int, default=1000)
    ap.add_argument("--adc-ms", type=ints, default=[8, 16, 32])
    ap.add_argument("--adc4-ms", type=ints, default=[16, 32, 64], help="m of the 4-bit fast-scan comparison")
    ap.add_argument("--nlists", type=ints, default=[1024])
    ap.add_argument("--cluster-dims", type=ints, default=[64, 384])
    ap.add_argument("--codes", default="32:128,48:192,64:128:4,96:192:4",
                    help="m:pq_dim[:nbits] for adanns IVFOPQIndex (nbits 8 unless given; 4 = fast-scan)")
    ap.add_argument("--faiss-ms", type=ints, default=[32, 48])
    ap.add_argument("--faiss-fs-ms", type=ints, default=[48, 96],
                    help="m of the extra comparison with faiss' IVF fast-scan (OPQ{m},IVF{nlist},PQ{m}x4fs)")
    ap.add_argument("--nprobes", type=ints, default=[4, 8, 16, 32, 64])
    ap.add_argument("--rerank-ks", type=ints, default=[50, 100, 200])
    ap.add_argument("--k-factors", type=ints, default=[5, 10, 20])
    ap.add_argument("--train-repeats", type=int, default=1)
    ap.add_argument("--train-niter", type=int, default=50)
    ap.add_argument("--train-max-points", type=int, default=65536)
    ap.add_argument("--name", default="pq_vs_faiss")
    args = ap.parse_args()
    args.codes = [tuple(int(v) for v in (pair + ":8").split(":")[:3]) for pair in args.codes.split(",")]
    faiss.omp_set_num_threads(THREADS)
    c = load_corpus(args.data)
    print(cpu_summary(machine_info()), flush=True)
    fns = {"prefix": section_prefix, "adc": section_adc, "ivfopq": section_ivfopq, "train": section_train}
    for name in [s for s in args.only.split(",") if s]:
        t0 = time.perf_counter()
        body = fns[name](c, args)
        body["seconds"] = round(time.perf_counter() - t0, 1)
        write_results(args.name, {name: body})
        print(f"[{name}: {body['seconds']} s]", flush=True)


if __name__ == "__main__":
    main()
