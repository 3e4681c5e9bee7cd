"""Is adanns' graph index (HNSW on a Matryoshka prefix, re-ranked with the full vectors) faster than the
graph indexes users compare it with? (metric ip, k = 10, search on 1 thread)

Corpora (``--corpus``): ``wordnet`` (wordnet-minilm, 116,659 x 384 MiniLM embeddings, the default) or
``synthetic``: a Matryoshka-like corpus the script generates (default 200,000 x 768, seed 0): vectors drawn
around 4,000 cluster centres, each coordinate j scaled by 1 / sqrt(1 + j / 24) so that the energy decays over
the coordinates and a prefix carries most of a vector's direction (as in Matryoshka embeddings), then
normalised; the 1,000 queries are stored vectors plus noise of the same spectrum (near the data, not in it);
the exact top-10 comes from a brute-force scan.

Peers, built in the same process with the same M and ef_construction (200) where they have them: hnswlib
(M 16 and 32), faiss IndexHNSWFlat (M 32), faiss HNSW32,SQ8 wrapped in IndexRefineFlat (codes walked, full
vectors re-rank), and, when installed (each skipped with a message otherwise): usearch (f32, connectivity 16,
expansion_add 200), NGT (ngtpy ANNG, default edges, epsilon swept; queries one per call from Python, so its
batch figure includes a Python loop), Intel SVS (scalable-vs Vamana, degree 32, window 200, float32) and ScaNN
(tree + AH 4-bit + reorder, leaves and reorder depth swept). adanns GraphIndex is built on several prefixes
graph_dim, walked on float32 prefixes or on their 8-bit codes (storage sq8); a query walks the graph on its
first graph_dim coordinates and re-ranks the beam (or its best 2k, rerank_k) with all coordinates. Memory:
adanns' `nbytes` (vectors, links, codes); the peers' serialized size (their in-memory layout).

Sections (``--only``, comma-separated; default all):
  search  Build every index with 2 threads (build time, memory), sweep ef (and the peers' knobs) for
          recall@10; per system the cheapest setting reaching each target is re-timed with the others in
          turns (batch of 1,000 queries per call, 1 thread, best of --repeats + 2) and one query per call
          (p50, warm: systems in turns per block of 100 queries; cold: in turns per query). Targets: adanns' fastest setting at recall >= 0.95 at least 1.5x the best of hnswlib / faiss,
          at >= 0.98 1.3x; single-query p50 latency (one query per call) at recall 0.95 at most 0.7x theirs;
          build time with 2 threads at most hnswlib's at the same M; size at most 1.3x hnswlib's.
  churn   30% of the vectors removed (in three batches, consolidated as they go) and added again: recall
          at fixed ef against a fresh build of the same configuration. Target: within 0.01.

The machine is shared with other jobs: timings are noisy, so the systems are timed in turns and compared as
ratios measured in this one process. Run from the repository root:
    .venv/bin/python benchmarks/graph_vs_peers.py [--only search,churn] [--corpus synthetic]
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins BLAS/OpenMP to one thread before numpy/faiss load)

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import adanns

from _common import (Corpus, add_data_arg, cpu_summary, load_corpus, machine_info, print_table, recall_at, time_fn,
                     time_interleaved, write_results)

K = 10
EF_C = 200
BUILD_THREADS = 2
EFS = (10, 12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 96, 128, 192, 256, 384, 512)
# The peers the summary's targets name (hnswlib, faiss); the others are reported beside them.
TARGET_PEERS = ("hnswlib", "faiss")
TARGETS = (0.95, 0.98)


class System:
    """One built index: a name, its search function for a setting, its settings, build time and size."""

    def __init__(self, name, search, settings, build_s, size_bytes, peer):
        self.name, self.search, self.settings = name, search, settings
        self.build_s, self.size_bytes, self.peer = build_s, size_bytes, peer

    @property
    def target_peer(self) -> bool:
        return self.peer and self.name.split()[0] in TARGET_PEERS


def file_size(save) -> int:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "index")
        save(path)
        return os.path.getsize(path)


def build_adanns(x, M, graph_dim, storage):
    t = time.perf_counter()
    index = adanns.GraphIndex(x.shape[1], graph_dim=graph_dim, M=M, ef_construction=EF_C, metric="ip",
                              storage=storage)
    index.add(x, threads=BUILD_THREADS)
    build = time.perf_counter() - t
    # Re-ranking every candidate of the beam, or only the best 2k of them (fewer full rows fetched).
    settings = [{"ef": ef, **r} for ef in EFS for r in ({}, {"rerank_k": 2 * K}) if not r or ef > 2 * K]
    return System(f"adanns graph M{M} d{graph_dim} {storage}",
                  lambda q, ef, rerank_k=None: index.search(q, K, ef=ef, rerank_k=rerank_k, threads=1).ids,
                  settings, build, index.nbytes, False), index


def build_hnswlib(x, M):
    import hnswlib

    t = time.perf_counter()
    index = hnswlib.Index("ip", x.shape[1])
    index.init_index(len(x), M=M, ef_construction=EF_C, random_seed=0)
    index.set_num_threads(BUILD_THREADS)
    index.add_items(x, np.arange(len(x)))
    build = time.perf_counter() - t
    index.set_num_threads(1)

    def search(q, ef):
        index.set_ef(ef)
        return index.knn_query(q, K)[0].astype(np.int64)

    return System(f"hnswlib M{M}", search, [{"ef": ef} for ef in EFS if ef >= K], build,
                  file_size(index.save_index), True)


def build_faiss(x, M, sq8):
    import faiss

    faiss.omp_set_num_threads(BUILD_THREADS)
    t = time.perf_counter()
    if sq8:
        base = faiss.index_factory(x.shape[1], f"HNSW{M},SQ8", faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = EF_C
        base.train(x)
        index = faiss.IndexRefineFlat(base)  # adds to both: SQ8 codes in the graph, full vectors to re-rank
        index.add(x)
    else:
        index = base = faiss.IndexHNSWFlat(x.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = EF_C
        base.add(x)
    build = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    hnsw = faiss.downcast_index(base).hnsw

    def search(q, ef, k_factor=None):
        hnsw.efSearch = ef
        if k_factor is not None:
            index.k_factor = k_factor
        return index.search(q, K)[1]

    settings = [{"ef": ef, **({"k_factor": f} if sq8 else {})} for ef in EFS if ef >= K for f in ((2, 4) if sq8 else (1,))]
    name = f"faiss HNSW{M},SQ8+RFlat" if sq8 else f"faiss HNSWFlat M{M}"
    return System(name, search, settings, build, file_size(lambda p: faiss.write_index(index, p)), True)


def build_usearch(x, M):
    from usearch.index import Index

    t = time.perf_counter()
    index = Index(ndim=x.shape[1], metric="ip", dtype="f32", connectivity=M, expansion_add=EF_C)
    index.add(np.arange(len(x)), x, threads=BUILD_THREADS)
    build = time.perf_counter() - t

    def search(q, ef):
        index.expansion_search = ef
        return np.asarray(index.search(q, K, threads=1).keys, dtype=np.int64).reshape(len(q), K)

    return System(f"usearch M{M} f32", search, [{"ef": ef} for ef in EFS if ef >= K], build,
                  file_size(index.save), True)


def build_ngt(x, folder):
    import ngtpy

    path = os.path.join(folder, "ngt")
    t = time.perf_counter()
    ngtpy.create(path, x.shape[1], distance_type="Inner Product", object_type="Float")
    index = ngtpy.Index(path)
    index.batch_insert(x, num_threads=BUILD_THREADS)
    build = time.perf_counter() - t
    index.save()
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)

    def search(q, epsilon):  # one query per call: ngtpy has no batch search returning arrays
        out = np.full((len(q), K), -1, dtype=np.int64)
        for i, row in enumerate(q):
            found = [j for j, _ in index.search(row, size=K, epsilon=epsilon)]
            out[i, :len(found)] = found
        return out

    return System("NGT ANNG", search, [{"epsilon": e} for e in (0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)],
                  build, size, True)


def build_svs(x):
    import svs

    t = time.perf_counter()
    params = svs.VamanaBuildParameters(graph_max_degree=32, window_size=EF_C)
    index = svs.Vamana.build(params, x, svs.DistanceType.MIP, num_threads=BUILD_THREADS)
    build = time.perf_counter() - t
    index.num_threads = 1

    def search(q, window):
        index.search_window_size = window
        return index.search(q, K)[0].astype(np.int64)

    with tempfile.TemporaryDirectory() as d:
        index.save(os.path.join(d, "config"), os.path.join(d, "graph"), os.path.join(d, "data"))
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    return System("SVS Vamana R32 f32", search, [{"window": ef} for ef in EFS if ef >= K], build, size, True)


def build_scann(x):
    import scann

    leaves = int(round(2 * np.sqrt(len(x))))
    t = time.perf_counter()
    index = (scann.scann_ops_pybind.builder(x, K, "dot_product")
             .tree(num_leaves=leaves, num_leaves_to_search=leaves // 20, training_sample_size=min(len(x), 100_000))
             .score_ah(2, anisotropic_quantization_threshold=0.2).reorder(100)
             .set_n_training_threads(BUILD_THREADS).build())
    build = time.perf_counter() - t

    def search(q, leaves_to_search, reorder):
        if len(q) == 1:
            return index.search(q[0], final_num_neighbors=K, leaves_to_search=leaves_to_search,
                                pre_reorder_num_neighbors=reorder)[0].astype(np.int64)[None, :]
        return index.search_batched(q, final_num_neighbors=K, leaves_to_search=leaves_to_search,
                                    pre_reorder_num_neighbors=reorder)[0].astype(np.int64)

    with tempfile.TemporaryDirectory() as d:
        index.serialize(d)
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    settings = [{"leaves_to_search": s, "reorder": r} for s in (5, 10, 20, 40, 80, 160) for r in (40, 100)]
    return System(f"ScaNN AH leaves {leaves}", search, settings, build, size, True)


def optional_peer(label, build, *args):
    """A peer that may be absent: its System, or None with a message."""
    try:
        return build(*args)
    except ImportError as e:
        print(f"skipped {label}: not installed ({e})", flush=True)
    except Exception as e:  # a peer that fails on this corpus is reported, not fatal
        print(f"skipped {label}: {type(e).__name__}: {e}", flush=True)
    return None


def sweep(system, q, gt, repeats):
    rows = []
    for s in system.settings:
        ids = system.search(q, **s)
        r = recall_at(ids, gt, K)
        t = time_fn(lambda: system.search(q, **s), repeats=repeats)
        rows.append({"setting": s, "recall": r, "qps": len(q) / t.best})
        if r >= 0.999:
            break
    return rows


def cheapest_at(rows, target):
    """The first setting in sweep order (ef ascending, then k_factor) that reaches the target recall. It is
    chosen by recall, which does not depend on timing; its QPS is then re-measured in turns with the other
    systems' (the sweep's single timings are too noisy on a shared machine to pick a winner from)."""
    return next((r for r in rows if r["recall"] >= target), None)


def p50_single_query_us(chosen, q, n=500, block=100):
    """Median time of one query per call, two ways, on the same n queries:
    - cold: the systems take turns query by query, so each query finds the caches holding the other
      systems' data (a server whose memory is shared with other work);
    - warm: the systems take turns block by block (`block` queries each), so each query follows queries
      on the same index (a server answering one index; the ann-benchmarks convention).
    Returns {name: {"cold": us, "warm": us}}."""
    n = min(n, len(q))
    cold = {name: [] for name in chosen}
    warm = {name: [] for name in chosen}
    for i in range(n):
        one = q[i:i + 1]
        for name, (system, setting) in chosen.items():
            t = time.perf_counter()
            system.search(one, **setting)
            cold[name].append(time.perf_counter() - t)
    for b in range(0, n, block):
        for name, (system, setting) in chosen.items():
            for i in range(b, min(b + block, n)):
                one = q[i:i + 1]
                t = time.perf_counter()
                system.search(one, **setting)
                warm[name].append(time.perf_counter() - t)
    return {name: {"cold": statistics.median(cold[name]) * 1e6, "warm": statistics.median(warm[name]) * 1e6}
            for name in chosen}


def run_search(c, args):
    x, q, gt = c.base, c.queries, c.gt
    systems = []

    def built(system):
        if system is not None:
            systems.append(system)
            print(f"built {system.name}: {system.build_s:.1f} s", flush=True)

    for M, gd, storage in args.adanns:
        built(build_adanns(x, M, gd, storage)[0])
    for M in args.hnswlib:
        built(build_hnswlib(x, M))
    for kind in args.faiss:
        built(build_faiss(x, 32, sq8=kind == "sq8"))
    with tempfile.TemporaryDirectory() as folder:
        for peer in args.peers:
            built({"usearch": lambda: optional_peer("usearch", build_usearch, x, 16),
                   "ngt": lambda: optional_peer("NGT (ngtpy)", build_ngt, x, folder),
                   "svs": lambda: optional_peer("SVS (scalable-vs)", build_svs, x),
                   "scann": lambda: optional_peer("ScaNN", build_scann, x)}[peer]())
        return search_systems(systems, q, gt, args)


def search_systems(systems, q, gt, args):

    curves = {s.name: sweep(s, q, gt, args.repeats) for s in systems}
    sweep_rows = [[name, str(r["setting"]), r["recall"], r["qps"]] for name, rows in curves.items() for r in rows]
    print_table("sweep (batch of 1,000 queries, 1 thread)", ["system", "setting", "recall@10", "QPS"], sweep_rows)

    best, summary = {}, []
    for target in TARGETS:
        chosen = {s.name: (s, cheapest_at(curves[s.name], target)) for s in systems}
        chosen = {name: (s, r) for name, (s, r) in chosen.items() if r is not None}
        timings = time_interleaved({name: (lambda s=s, r=r: s.search(q, **r["setting"]))
                                    for name, (s, r) in chosen.items()}, repeats=args.repeats + 2, warmup=1)
        for name, (s, r) in chosen.items():
            best[(name, target)] = {"setting": r["setting"], "recall": r["recall"], "qps": timings[name].rate(len(q))}
    lat = p50_single_query_us({s.name: (s, best[(s.name, 0.95)]["setting"]) for s in systems
                               if (s.name, 0.95) in best}, q)
    table = []
    for s in systems:
        row = [s.name, s.build_s, s.size_bytes / 1e6]
        for target in TARGETS:
            f = best.get((s.name, target))
            row += [f["qps"] if f else None, f"{f['setting']} r={f['recall']:.3f}" if f else "not reached"]
        row += [lat[s.name]["warm"], lat[s.name]["cold"]] if s.name in lat else [None, None]
        table.append(row)
    columns = ["system", "build s (2 threads)", "memory MB", "QPS @0.95", "setting @0.95", "QPS @0.98", "setting @0.98",
               "p50 us @0.95 warm (1 query/call)", "p50 us @0.95 cold (1 query/call)"]
    print_table("cheapest setting per recall target, re-timed in turns", columns, table)

    ours = [s for s in systems if not s.peer]
    for label, peers in (("hnswlib / faiss", [s for s in systems if s.target_peer]),
                         ("any peer", [s for s in systems if s.peer])):
        for target in TARGETS:
            reached = [(best[(p.name, target)]["qps"], p.name) for p in peers if (p.name, target) in best]
            top_ours = max((best[(o.name, target)]["qps"], o.name) for o in ours if (o.name, target) in best)
            if not reached:
                summary.append(f"recall >= {target}: no {label} reached it")
                continue
            top_peer = max(reached)
            summary.append(f"recall >= {target}: {top_ours[1]} {top_ours[0]:,.0f} QPS vs best of {label}, "
                           f"{top_peer[1]} {top_peer[0]:,.0f} QPS: {top_ours[0] / top_peer[0]:.2f}x")
        for cache in ("warm", "cold"):
            peer_lat = min(((lat[p.name][cache], p.name) for p in peers if p.name in lat), default=None)
            our_lat = min((lat[o.name][cache], o.name) for o in ours if o.name in lat)
            if peer_lat:
                summary.append(f"single-query p50 ({cache}) at recall 0.95: {our_lat[1]} {our_lat[0]:.0f} us vs best "
                               f"of {label}, {peer_lat[1]} {peer_lat[0]:.0f} us: {our_lat[0] / peer_lat[0]:.2f}x")
    for o in ours:
        M = o.name.split(" M")[1].split()[0]
        h = next((p for p in systems if p.name == f"hnswlib M{M}"), None)
        if h is None:
            continue
        summary.append(f"{o.name}: build {o.build_s:.0f} s vs hnswlib M{M} {h.build_s:.0f} s "
                       f"({o.build_s / h.build_s:.2f}x); memory {o.size_bytes / h.size_bytes:.2f}x")
    for line in summary:
        print(line)
    return {"summary": summary,
            "tables": [{"title": "cheapest setting per recall target, re-timed in turns (search 1 thread; build 2 "
                                 "threads)",
                        "columns": columns, "rows": table},
                       {"title": "sweep (batch of 1,000 queries per call, 1 thread)",
                        "columns": ["system", "setting", "recall@10", "QPS"], "rows": sweep_rows}]}


def synthetic_corpus(n, d, nq, seed=0):
    """The Matryoshka-like corpus described above, deterministic for the seed."""
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    decay = (1.0 / np.sqrt(1.0 + np.arange(d) / 24.0)).astype(np.float32)
    centres = rng.standard_normal((4000, d), dtype=np.float32)
    base = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 20000):  # in blocks: bounded temporary memory
        e = min(n, s + 20000)
        rows = centres[rng.integers(0, len(centres), e - s)] + 0.8 * rng.standard_normal((e - s, d), dtype=np.float32)
        rows *= decay
        base[s:e] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    noise = rng.standard_normal((nq, d), dtype=np.float32) * decay
    noise *= 0.4 / np.sqrt(float((decay ** 2).sum()))  # norm about 0.4, against unit-norm data
    queries = base[rng.choice(n, nq, replace=False)] + noise
    queries = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True), dtype=np.float32)
    exact = adanns.FlatIndex(d, metric="ip")
    exact.add(base)
    gt = exact.search(queries, 100, threads=BUILD_THREADS).ids
    print(f"synthetic corpus {n:,} x {d}, {nq:,} queries: {time.perf_counter() - t:.1f} s", flush=True)
    return Corpus(f"synthetic-{n}x{d}-seed{seed}", base, queries, gt, "generated by graph_vs_peers.py")


def run_churn(c, args):
    x, q, gt = c.base, c.queries, c.gt
    M, gd, storage = args.adanns[0]
    fresh = build_adanns(x, M, gd, storage)[1]
    churned = build_adanns(x, M, gd, storage)[1]
    rng = np.random.default_rng(0)
    moved = rng.choice(len(x), size=int(0.3 * len(x)), replace=False)
    t = time.perf_counter()
    for part in np.array_split(moved, 3):
        churned.remove(part)
    remove_s = time.perf_counter() - t
    t = time.perf_counter()
    churned.add(x[moved], ids=moved, threads=BUILD_THREADS)
    readd_s = time.perf_counter() - t
    rows = []
    for ef in (16, 32, 64, 128):
        a = recall_at(fresh.search(q, K, ef=ef, threads=1).ids, gt)
        b = recall_at(churned.search(q, K, ef=ef, threads=1).ids, gt)
        rows.append([ef, a, b, b - a])
    print_table(f"churn: adanns graph M{M} d{gd} {storage}, 30% removed then re-added",
                ["ef", "fresh", "churned", "diff"], rows)
    summary = [f"adanns graph M{M} d{gd} {storage}: 30% of {len(x):,} removed in 3 batches in {remove_s:.1f} s (consolidation "
               f"included), re-added in {readd_s:.1f} s (2 threads); worst recall difference "
               f"{min(r[3] for r in rows):+.4f}"]
    print(summary[0])
    return {"summary": summary, "tables": [{"title": "recall@10 of a fresh build and after 30% churn",
                                            "columns": ["ef", "fresh", "churned", "churned - fresh"],
                                            "rows": rows}]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(ap)
    ap.add_argument("--only", default="search,churn")
    ap.add_argument("--adanns", default="16:192:sq8,16:128:sq8,16:384:sq8,16:384:float32",
                    help="adanns configurations M:graph_dim:storage, comma-separated; the first is used by churn "
                         "(default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--corpus", choices=("wordnet", "synthetic"), default="wordnet",
                    help="wordnet: the corpus in --data; synthetic: generated (see above); results go to "
                         "graph_vs_peers.{json,md} or graph_vs_peers_synthetic.{json,md}")
    ap.add_argument("--synthetic", default="200000:768:1000", help="n:dim:queries of the synthetic corpus")
    ap.add_argument("--peers", default="usearch,ngt,svs,scann",
                    help="optional peers besides hnswlib and faiss (default %(default)s)")
    ap.add_argument("--hnswlib", default="16,32", help="hnswlib M values (default %(default)s)")
    ap.add_argument("--faiss", default="flat,sq8", help="faiss HNSW32 variants: flat, sq8 (default %(default)s)")
    args = ap.parse_args()
    args.peers = [p for p in args.peers.split(",") if p]
    args.hnswlib = [int(m) for m in args.hnswlib.split(",") if m]
    args.faiss = [f for f in args.faiss.split(",") if f]
    if args.corpus == "synthetic" and args.adanns == ap.get_default("adanns"):
        args.adanns = "16:192:sq8,16:384:sq8"
    args.adanns = [(int(m), int(d), st) for m, d, st in (c.split(":") for c in args.adanns.split(","))]
    if args.corpus == "synthetic":
        n, d, nq = (int(v) for v in args.synthetic.split(":"))
        c = synthetic_corpus(n, d, nq)
    else:
        c = load_corpus(args.data)
    print(cpu_summary(machine_info()), flush=True)
    for section in args.only.split(","):
        body = {"search": run_search, "churn": run_churn}[section](c, args)
        body["summary"].append("absolute timings depend on the machine's load (the CPU line above gives it); "
                               "compare the ratios, measured in turns in this one process")
        # Written section by section: a long run stopped later still leaves what it measured.
        name = "graph_vs_peers" + ("_synthetic" if args.corpus == "synthetic" else "")
        jpath, mpath = write_results(name, {section: body})
        print(f"-> {jpath}, {mpath}", flush=True)


if __name__ == "__main__":
    main()
