"""`adanns bench`: load the user's arrays, get exact ground truth, sweep the families, write the results."""

from __future__ import annotations

import datetime
import importlib
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from .. import kinds
from . import groundtruth, heldout, machine, plots, report, sweep
from .family import Context

# One family per index kind that names one (adanns/kinds/registry.py), in registration order.
FAMILIES = {k.name: f"families.{k.bench_family}" for k in kinds.kinds() if k.bench_family}
PEERS = {"faiss": ["peers.faiss_flat", "peers.faiss_ivfflat", "peers.faiss_opq_pq", "peers.faiss_ivfpq_refine",
                   "peers.faiss_ivfopq_refine", "peers.faiss_binary", "peers.faiss_hnsw"],
         "hnswlib": ["peers.hnswlib_hnsw"]}


def _names(text: str, known: dict, what: str) -> list:
    names = [s.strip() for s in text.split(",") if s.strip()] if text and text != "none" else []
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown {what} {bad}; choose from {', '.join(known)} (or 'none')")
    return names


def _matrix(path: str, what: str) -> np.ndarray:
    a = np.load(path, allow_pickle=False)
    if a.ndim != 2 or a.dtype.kind != "f" or a.shape[0] == 0:
        raise ValueError(f"{what} {path!r} must be a non-empty 2-D float array, got dtype {a.dtype} shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{what} {path!r} holds NaN or infinity (first bad row "
                         f"{int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])})")
    return a


def _labels(path: str, n: int, what: str) -> np.ndarray:
    a = np.load(path, allow_pickle=False)
    if a.shape != (n,) or a.dtype.kind not in "iu":
        raise ValueError(f"{what} {path!r} must be {n} integers, got dtype {a.dtype} shape {a.shape}")
    return a


def load_inputs(args):
    base, queries = _matrix(args.base, "base"), _matrix(args.queries, "queries")
    if queries.shape[1] != base.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dims, base has {base.shape[1]}")
    if args.max_queries and len(queries) > args.max_queries:
        queries = queries[:args.max_queries]
    gt = None
    if args.gt:
        gt = np.load(args.gt, allow_pickle=False)
        if gt.ndim != 2 or gt.dtype.kind not in "iu" or gt.shape[0] < len(queries) or gt.shape[1] < args.k:
            raise ValueError(f"gt {args.gt!r} must be integer ids of shape (>= {len(queries)}, >= {args.k}), got "
                             f"dtype {gt.dtype} shape {gt.shape}")
        if gt.size and (gt.min() < 0 or gt.max() >= len(base)):
            raise ValueError(f"gt {args.gt!r} holds ids outside 0..{len(base) - 1}")
        gt = gt[:len(queries)].astype(np.int64)
    labels = None
    if bool(args.labels_base) != bool(args.labels_queries):
        raise ValueError("give both --labels-base and --labels-queries, or neither")
    if args.labels_base:
        labels = sweep.Labels(_labels(args.labels_base, len(base), "labels-base"),
                              _labels(args.labels_queries, len(queries), "labels-queries")[:len(queries)])
    return base, queries, gt, labels


def main(args) -> int:
    from tqdm import tqdm

    t_start = time.perf_counter()
    out = Path(args.out)
    plot = not args.no_plots
    if plot:
        plots.require()  # fail before the sweep, not after it
    families = _names(args.families, FAMILIES, "families")
    peers = _names(args.peers, PEERS, "peers")
    base, queries, gt, labels = load_inputs(args)
    out.mkdir(parents=True, exist_ok=True)
    info = machine.info()
    gt_source = "given"
    if gt is None:
        with tqdm(total=len(queries), desc="exact ground truth", unit="q", disable=args.quiet) as bar:
            gt, cached = groundtruth.cached_ground_truth(out, base, queries, min(100, len(base)), progress=bar.update)
        gt_source = "cached in " + str(out) if cached else "computed (exact, numpy BLAS) and cached in " + str(out)

    ctx = Context(dim=base.shape[1], n=len(base), k=args.k, quick=args.quick, seed=args.seed,
                  threads=args.threads or os.cpu_count() or 1)
    variants, skipped = [], []
    for key in families + [m for p in peers for m in PEERS[p]]:
        mod = importlib.import_module(f".{FAMILIES.get(key, key)}", __package__)
        why = mod.missing()
        if why:
            skipped.append(f"{mod.NAME}: {why}")
            print(f"skipping {mod.NAME}: {why}", file=sys.stderr)
            continue
        variants += mod.variants(ctx)
    builds, settings = sweep.size(variants)
    opts = sweep.Options(repeats=args.repeats or (1 if args.quick else 3),
                         latency_queries=args.latency_queries or (50 if args.quick else 200), time_all=args.time_all)
    print(f"sweep: {builds} builds, {settings} search settings over {len(set(v.family for v in variants))} "
          f"families ({'quick' if args.quick else 'default'}), {len(queries)} queries, {ctx.threads} threads; "
          f"load average {info['loadavg_start']}", flush=True)
    with tqdm(total=settings, desc="sweep", unit="setting", disable=args.quiet) as bar:
        records, kept = sweep.run(variants, base, queries, gt, ctx, opts, labels, bar,
                                  log=lambda m: (bar.write(m), skipped.append(m)))
    held = []
    if not args.no_tune_check and len(queries) >= 20:
        for family in opts.keep_families:  # IVF first: the check the earlier results report
            if family not in kept:
                continue
            variant, index, _ = kept.pop(family)
            print(f"compute-aware search: tuning {variant.family} {variant.name} on half the queries ...", flush=True)
            t0 = time.perf_counter()
            check = heldout.evaluate(index, queries, gt, k=ctx.k, seed=args.seed, threads=ctx.threads)
            held.append({"family": family, "build": variant.name, **check, "seconds": time.perf_counter() - t0})
            del index
    kept.clear()
    info["loadavg_end"] = machine.loadavg()
    payload = {"corpus": args.name or Path(args.base).resolve().parent.name, "command": _command(),
               "date": datetime.datetime.now().isoformat(timespec="seconds"), "quick": args.quick, "k": ctx.k,
               "n": len(base), "dim": ctx.dim, "nq": len(queries), "threads": ctx.threads, "seed": args.seed,
               "gt_source": gt_source, "machine": info, "options": vars(opts),
               "sweep": {"builds": builds, "settings": settings}, "skipped": skipped, "records": records,
               "heldout": held, "elapsed_s": time.perf_counter() - t_start}
    jpath, mpath = report.write(out, payload)
    written = [jpath, mpath]
    if plot:
        written += plots.draw(records, out, f"{payload['corpus']}: n={len(base)}, d={ctx.dim}, k={ctx.k}")
    print(f"done in {payload['elapsed_s']:.0f} s: " + ", ".join(str(p) for p in written))
    for h in held:
        for t in h["targets"]:
            print(f"{h['family']}: target_recall {t['target']}: held-out recall@{ctx.k} {t['heldout_recall']:.4f} "
                  f"at {t['heldout_mflops']:.3f} MFLOPs/q (oracle {t['oracle_mflops']}, ratio {t['cost_ratio']})")
    return 0


def _command() -> str:
    return " ".join(shlex.quote(a) for a in ["adanns", *sys.argv[1:]])
