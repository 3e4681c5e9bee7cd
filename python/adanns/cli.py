"""The ``adanns`` command: build an index from a .npy file, search it, describe it, serve indexes over HTTP.

    adanns build BASE.npy -o INDEX [--kind ivf|flat|opq|ivfopq|binary|graph] [--nlist N] [--cluster-dim D] [--metric ip|l2|cosine]
    adanns search INDEX QUERIES.npy -k 10 [--nprobe N] [--search-dim D] [--ef EF] [...] -o OUT.npz
    adanns info INDEX
    adanns serve --data-dir DIR [--host 127.0.0.1] [--port 8000] [--api-key KEY]
    adanns bench --base B.npy --queries Q.npy [--gt GT.npy] --out DIR [--peers faiss,hnswlib] [--quick]

Errors print one line on stderr and exit with status 1 (2 for a bad command line).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import adanns


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _load_matrix(path: str, what: str) -> np.ndarray:
    """Memory-mapped, so a file larger than RAM is read chunk by chunk."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise ValueError(f"{what} {path!r} must be a 2-D floating-point array, got dtype {arr.dtype} "
                         f"shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} {path!r} is empty")
    return arr


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _new_index(args, dim: int):
    kind, metric = args.kind, args.metric
    if kind == "flat":
        return adanns.FlatIndex(dim, metric=metric)
    if kind == "ivf":
        return adanns.IVFIndex(dim, nlist=args.nlist, metric=metric, cluster_dim=args.cluster_dim, seed=args.seed,
                               niter=args.niter)
    if kind == "opq":
        return adanns.OPQIndex(dim, m=args.m, pq_dim=args.pq_dim, metric=metric, opq=not args.no_opq,
                               nbits=args.nbits, seed=args.seed)
    if kind == "ivfopq":
        return adanns.IVFOPQIndex(dim, nlist=args.nlist, cluster_dim=args.cluster_dim, m=args.m, pq_dim=args.pq_dim,
                                  metric=metric, opq=not args.no_opq, nbits=args.nbits, seed=args.seed,
                                  niter=args.niter)
    if kind == "graph":
        return adanns.GraphIndex(dim, graph_dim=args.graph_dim, M=args.M, ef_construction=args.ef_construction,
                                 metric=metric, seed=args.seed)
    if metric != "ip":
        raise ValueError(f"--kind binary re-scores by inner product: --metric must be ip, got {metric}")
    return adanns.BinarizedIndex(dim, bits=args.bits, rotation=args.rotation, seed=args.seed)


def _default_train_size(args) -> int:
    """~40 training points per centroid (IVF lists, PQ sub-centroids); a binarizer needs a mean."""
    ksub = 1 << args.nbits
    return {"ivf": 40 * args.nlist, "opq": 40 * ksub, "ivfopq": 40 * max(args.nlist, ksub),
            "binary": 10_000 if args.rotation else 1_000}[args.kind]


def build(args) -> int:
    from tqdm import tqdm

    base = _load_matrix(args.base, "base")
    n, dim = base.shape
    ids = None
    if args.ids:
        ids = np.load(args.ids, allow_pickle=False)
        if ids.shape != (n,):
            raise ValueError(f"ids {args.ids!r} must have shape ({n},), got {ids.shape}")
    t0 = time.perf_counter()
    index = _new_index(args, dim)
    if args.kind not in ("flat", "graph"):
        # Train on a seeded random sample (sorted rows: sequential reads of the mapped file).
        m = min(n, args.train_size or _default_train_size(args))
        rows = np.sort(np.random.default_rng(args.seed).choice(n, size=m, replace=False))
        with tqdm(total=m, desc="training", unit="vec", disable=args.quiet) as bar:
            sample = np.empty((m, dim), np.float32)
            for a, b in _chunks(m, args.chunk_size):
                sample[a:b] = base[rows[a:b]]
            index.train(sample, threads=args.threads)
            bar.update(m)
        del sample
    with tqdm(total=n, desc="adding", unit="vec", disable=args.quiet) as bar:
        for a, b in _chunks(n, args.chunk_size):
            chunk = np.ascontiguousarray(base[a:b], dtype=np.float32)
            chunk_ids = ids[a:b] if ids is not None else np.arange(a, b, dtype=np.int64)
            if args.kind == "flat":
                index.add(chunk, chunk_ids)
            else:
                index.add(chunk, chunk_ids, threads=args.threads)
            bar.update(b - a)
    index.save(args.output)
    print(f"built {index!r} in {time.perf_counter() - t0:.1f} s -> {args.output} "
          f"({os.path.getsize(args.output) / 1e6:.1f} MB)")
    return 0


def search(args) -> int:
    index = adanns.load(args.index, mmap=True)
    queries = _load_matrix(args.queries, "queries")
    knobs = dict(k=args.k, search_dim=args.search_dim, rerank_dim=args.rerank_dim, rerank_k=args.rerank_k,
                 threads=args.threads)
    if isinstance(index, (adanns.IVFIndex, adanns.IVFOPQIndex)):
        knobs["nprobe"] = args.nprobe
    elif args.nprobe != 1:
        raise ValueError("--nprobe applies to IVF and IVF-OPQ indexes only")
    if isinstance(index, adanns.GraphIndex):
        knobs["ef"] = args.ef
    elif args.ef is not None:
        raise ValueError("--ef applies to graph indexes only")
    if not isinstance(index, (adanns.FlatIndex, adanns.IVFIndex)):
        if args.search_dim is not None:
            raise ValueError("--search-dim applies to flat and IVF indexes only")
        del knobs["search_dim"]
    parts = [index.search(np.ascontiguousarray(queries[a:b], dtype=np.float32), **knobs)
             for a, b in _chunks(queries.shape[0], args.batch_size)]
    scores = np.concatenate([p.scores for p in parts])
    ids = np.concatenate([p.ids for p in parts])
    mflops = np.concatenate([p.mflops for p in parts])
    if args.output:
        np.savez(args.output, ids=ids, scores=scores, mflops=mflops)
        print(f"{len(ids)} queries, {mflops.mean():.3f} MFLOPs/query -> {args.output}")
    else:
        for row_ids, row_scores in zip(ids[:args.show], scores[:args.show]):
            print(" ".join(f"{i}:{s:.4f}" for i, s in zip(row_ids, row_scores)))
        print(f"{len(ids)} queries, {mflops.mean():.3f} MFLOPs/query")
    return 0


def info(args) -> int:
    index = adanns.load(args.index, mmap=True, verify=False)
    kind = {adanns.FlatIndex: "flat", adanns.IVFIndex: "ivf", adanns.OPQIndex: "opq", adanns.IVFOPQIndex: "ivfopq",
            adanns.BinarizedIndex: "binary", adanns.BinaryIndex: "binary codes", adanns.GraphIndex: "graph"}[type(index)]
    if kind == "binary codes":
        print(f"kind       {kind}\nbits       {index.nbits}\ncodes      {len(index)}")
        print(f"bytes      {index.nbytes}\nfile       {os.path.getsize(args.index)} bytes")
        return 0
    print(f"kind       {kind}\ndim        {index.dim}\nmetric     {index.metric}\nvectors    {len(index)}")
    if kind in ("opq", "ivfopq"):
        print(f"codes      m {index.m} x {index.nbits} bits of the first {index.pq_dim} dims, "
              f"{'OPQ' if index.rotation is not None else 'PQ'}")
    if kind == "binary":
        print(f"codes      {index.bits} bits, rotation {index.rotation}")
    if kind == "graph":
        print(f"graph      HNSW on the first {index.graph_dim} dims, M {index.M}, ef_construction "
              f"{index.ef_construction}, {index.max_level + 1} levels, {index.tombstones} tombstones")
    if kind in ("ivf", "ivfopq"):
        sizes = index.list_sizes()
        print(f"nlist      {index.nlist}\ncluster    {index.cluster_dim} dims\ntrained    {index.is_trained}")
        if len(sizes):
            print(f"lists      min {sizes.min()}, median {int(np.median(sizes))}, max {sizes.max()}")
    print(f"bytes      {index.nbytes}\nfile       {os.path.getsize(args.index)} bytes")
    return 0


def serve(args) -> int:
    try:
        import uvicorn

        from .server import Settings, asgi_app
    except ImportError as e:
        raise RuntimeError(f"the service needs the 'server' extra (pip install 'adanns[server]'): {e}") from None
    settings = Settings(data_dir=args.data_dir)
    if args.api_key:
        settings.api_key = args.api_key
    if args.max_body_mb:
        settings.max_body_bytes = int(args.max_body_mb * (1 << 20))
    if args.workers:
        settings.workers = args.workers
    if args.snapshot_every:
        settings.snapshot_every = args.snapshot_every
    if args.index:
        from .server.errors import ApiError
        from .server.store import Store

        store = Store(settings.data_dir, settings.snapshot_every)
        try:
            for spec in args.index:
                name, sep, path = spec.partition("=")
                if not sep or not name or not path:
                    raise ValueError(f"--index takes NAME=FILE, got {spec!r}")
                if name in store.names():
                    print(f"index {name!r} already in {settings.data_dir}; not importing {path}")
                    continue
                try:
                    c = store.import_file(name, path)
                except ApiError as e:
                    raise ValueError(e.detail) from None
                print(f"imported {path} as index {name!r} ({c.info()['count']} vectors)")
        finally:
            store.close()
    # No proxy-header rewriting (the service is addressed directly) and no Server header: less work
    # on every request.
    uvicorn.run(asgi_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log, proxy_headers=False, server_header=False)
    return 0


def bench(args) -> int:
    from .bench.run import main as run_bench

    return run_bench(args)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="adanns", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"adanns {adanns.__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build an index from a .npy file of embeddings")
    b.add_argument("base", help="(n, d) float .npy (float16 is converted chunk by chunk)")
    b.add_argument("-o", "--output", required=True, help="index file to write")
    b.add_argument("--kind", choices=("ivf", "flat", "opq", "ivfopq", "binary", "graph"), default="ivf")
    b.add_argument("--metric", choices=("ip", "l2", "cosine"), default="ip")
    b.add_argument("--ids", help="(n,) int64 .npy of ids (default 0..n-1)")
    b.add_argument("--nlist", type=_positive, default=1024, help="IVF lists (default %(default)s)")
    b.add_argument("--cluster-dim", type=_positive, help="coordinates k-means clusters on (default: all)")
    b.add_argument("--m", type=_positive, default=32, help="opq/ivfopq: bytes (sub-quantizers) per code")
    b.add_argument("--pq-dim", type=_positive, help="opq/ivfopq: coordinates the codes quantize (default: all)")
    b.add_argument("--nbits", type=int, choices=(4, 8), default=8, help="opq/ivfopq: bits per sub-code")
    b.add_argument("--no-opq", action="store_true", help="opq/ivfopq: plain PQ, no learned rotation")
    b.add_argument("--bits", type=_positive, help="binary: code bits (multiple of 8; default: dim rounded down)")
    b.add_argument("--rotation", choices=("itq",), help="binary: learn an ITQ rotation before the signs")
    b.add_argument("--M", type=_positive, default=32, help="graph: links per node (2M on the bottom level)")
    b.add_argument("--ef-construction", type=_positive, default=200, help="graph: beam width of insertion")
    b.add_argument("--graph-dim", type=_positive, help="graph: coordinates the graph is built on (default: all)")
    b.add_argument("--train-size", type=_positive,
                   help="training sample size (default ~40 per centroid: 40 * nlist, 40 * 2^nbits)")
    b.add_argument("--niter", type=int, default=20)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--chunk-size", type=_positive, default=65536, help="rows read and added at a time")
    b.add_argument("--threads", type=_positive)
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=build)

    s = sub.add_parser("search", help="search an index with a .npy of queries (any prefix length)")
    s.add_argument("index")
    s.add_argument("queries")
    s.add_argument("-k", type=_positive, default=10)
    s.add_argument("--nprobe", type=_positive, default=1)
    s.add_argument("--search-dim", type=_positive)
    s.add_argument("--ef", type=_positive, help="graph: beam width of the search (default 64)")
    s.add_argument("--rerank-dim", type=_positive)
    s.add_argument("--rerank-k", type=_positive)
    s.add_argument("--threads", type=_positive)
    s.add_argument("--batch-size", type=_positive, default=4096)
    s.add_argument("-o", "--output", help=".npz to write (ids, scores, mflops); default: print the first rows")
    s.add_argument("--show", type=int, default=5, help="rows printed without -o")
    s.set_defaults(func=search)

    i = sub.add_parser("info", help="describe an index file")
    i.add_argument("index")
    i.set_defaults(func=info)

    v = sub.add_parser("serve", help="serve indexes over HTTP (REST, OpenAPI at /docs)")
    v.add_argument("--data-dir", required=True, help="folder holding the indexes (created if missing)")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (or set ADANNS_API_KEY)")
    v.add_argument("--max-body-mb", type=float, help="request body limit in MiB (default 64)")
    v.add_argument("--workers", type=_positive, help="threads for searches and writes")
    v.add_argument("--snapshot-every", type=_positive, help="logged writes between snapshots (default 1000)")
    v.add_argument("--index", action="append", metavar="NAME=FILE",
                   help="serve an index file built by 'adanns build' under NAME (imported into --data-dir "
                        "unless NAME exists there); repeatable")
    v.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    v.add_argument("--access-log", action="store_true")
    v.set_defaults(func=serve)

    bb = sub.add_parser("bench", help="recall vs MFLOPs / QPS of adanns and its peers on your embeddings",
                        description="Sweeps adanns index kinds and settings and the peers' equivalents on the "
                                    "same data in one process; writes results.json, results.md and PNG plots "
                                    "to --out. Metric: inner product.")
    bb.add_argument("--base", required=True, help="(n, d) float .npy")
    bb.add_argument("--queries", required=True, help="(nq, d) float .npy")
    bb.add_argument("--gt", help="(nq, >= k) int .npy of exact neighbour ids by inner product; computed and "
                                 "cached in --out when absent")
    bb.add_argument("--labels-base", help="(n,) int .npy: class labels, for top-1 accuracy and mAP@10")
    bb.add_argument("--labels-queries", help="(nq,) int .npy")
    bb.add_argument("--out", required=True, help="folder for results.json, results.md, plots, cached ground truth")
    bb.add_argument("--peers", default="faiss,hnswlib", help="comma-separated: faiss, hnswlib, or none "
                                                              "(missing ones are skipped; default %(default)s)")
    bb.add_argument("--families", default="flat,ivf,opq,ivfopq,binary",
                    help="adanns kinds to sweep (default %(default)s)")
    bb.add_argument("--quick", action="store_true", help="a small sweep (minutes on 100k vectors)")
    bb.add_argument("-k", type=_positive, default=10)
    bb.add_argument("--seed", type=int, default=0, help="training samples and the tuning split")
    bb.add_argument("--threads", type=_positive, help="'all threads' figures use this many (default: all cores)")
    bb.add_argument("--max-queries", type=_positive, help="use the first N queries only")
    bb.add_argument("--time-all", action="store_true", help="time every setting, not only near-frontier ones")
    bb.add_argument("--repeats", type=_positive, help="batch timings: best of N (default 1 with --quick, else 3)")
    bb.add_argument("--latency-queries", type=_positive,
                    help="single-query calls for p50/p99 (default 50 with --quick, else 200)")
    bb.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    bb.add_argument("--no-tune-check", action="store_true", help="skip the held-out check of target_recall")
    bb.add_argument("--name", help="corpus name in titles (default: the base file's folder)")
    bb.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    bb.set_defaults(func=bench)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("adanns: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        print(f"adanns {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
