"""The sweep: build every variant of every family, measure every setting's quality and cost, time the
settings that matter, and keep the build of each tunable adanns kind best at high recall for the held-out
tuning check."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import metrics, pareto, timing
from .family import Context, Variant, label


@dataclass
class Options:
    repeats: int = 2           # batch timings: best of this many
    latency_queries: int = 100  # single-query calls for p50 / p99
    time_all: bool = False     # time every setting, not only the first frontier layers
    layers: int = 3            # frontier layers (recall@10 vs MFLOPs) timed per build
    keep_families: tuple = ("adanns IVF", "adanns IVFOPQ", "adanns OPQ", "adanns graph")
    keep_target: float = 0.95


@dataclass
class Labels:
    base: np.ndarray
    queries: np.ndarray


def size(variants: list) -> tuple[int, int]:
    """(builds, search settings)."""
    return len(variants), sum(len(v.settings) for v in variants)


def run(variants: list, base: np.ndarray, queries: np.ndarray, gt: np.ndarray, ctx: Context, opts: Options,
        labels: Optional[Labels] = None, bar=None, log=print) -> tuple[list, dict]:
    """Returns (records, kept) where kept maps each family of ``opts.keep_families`` that was built to
    (variant, index handle, its records) of its best build at recall@10 >= keep_target (cheapest MFLOPs
    there; any build when none reaches it)."""
    records, kept, kept_cost = [], {}, {}
    for variant in variants:
        if bar is not None:
            bar.set_description(f"{variant.family} {variant.name}: build")
        t0 = time.perf_counter()
        try:
            built = variant.build(base)
        except Exception as e:  # a peer failing must not lose the whole sweep
            log(f"skipped {variant.family} {variant.name}: build failed: {e}")
            if bar is not None:
                bar.update(len(variant.settings))
            continue
        build_s = time.perf_counter() - t0
        rows = [_quality(variant, built, s, base, queries, gt, ctx, labels, build_s) for s in _each(variant, bar)]
        _time(rows, built, queries, ctx, opts, bar, variant)
        records += rows
        if variant.family in opts.keep_families and built.handle is not None:
            ok = [r["mflops"] for r in rows if r["recall@10"] >= opts.keep_target and r["mflops"] is not None]
            cost = min(ok, default=float("inf"))
            if variant.family not in kept or cost < kept_cost[variant.family]:
                kept[variant.family], kept_cost[variant.family] = (variant, built.handle, rows), cost
        del built
        gc.collect()
    return records, kept


def _each(variant: Variant, bar):
    if bar is not None:
        bar.set_description(f"{variant.family} {variant.name}: recall")
    for s in variant.settings:
        yield s
        if bar is not None:
            bar.update(1)


def _quality(variant: Variant, built, setting: dict, base, queries, gt, ctx: Context, labels, build_s) -> dict:
    ids, mflops = built.search(queries, ctx.k, setting, ctx.threads)
    row = {"family": variant.family, "peer": variant.peer, "build": dict(variant.params), "build_name": variant.name,
           "setting": dict(setting), "setting_name": label(setting), "k": ctx.k,
           "recall@1": metrics.recall_at(ids, gt, 1), "recall@10": metrics.recall_at(ids, gt, min(10, ctx.k)),
           "recall@100": None, "mflops": None if mflops is None else float(np.mean(mflops)),
           "qps_1t": None, "qps_all": None, "p50_ms": None, "p99_ms": None, "timed": False,
           "build_s": build_s, "bytes": int(built.nbytes), "top1_acc": None, "map@10": None}
    if gt.shape[1] >= 100 and len(base) >= 100:
        try:
            ids100, _ = built.search(queries, 100, setting, ctx.threads)
            row["recall@100"] = metrics.recall_at(ids100, gt, 100)
        except ValueError:  # e.g. rerank_k < 100: this setting cannot return 100 neighbours
            pass
    if labels is not None:
        row["top1_acc"] = metrics.top1_accuracy(ids, labels.base, labels.queries)
        row["map@10"] = metrics.map_at(ids, labels.base, labels.queries, min(10, ctx.k))
    return row


def _time(rows: list, built, queries, ctx: Context, opts: Options, bar, variant: Variant) -> None:
    if opts.time_all or len(rows) <= 12 or any(r["mflops"] is None for r in rows):
        chosen = rows
    else:
        chosen = pareto.layers(rows, "mflops", "recall@10", opts.layers)
    if bar is not None:
        bar.set_description(f"{variant.family} {variant.name}: timing {len(chosen)}")
    for r in chosen:
        s = r["setting"]
        r["qps_1t"] = timing.batch_qps(built.search, queries, ctx.k, s, 1, opts.repeats)
        r["qps_all"] = timing.batch_qps(built.search, queries, ctx.k, s, ctx.threads, opts.repeats)
        r["p50_ms"], r["p99_ms"] = timing.latency_ms(built.search, queries, ctx.k, s, opts.latency_queries)
        r["timed"] = True
