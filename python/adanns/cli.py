"""The ``adanns`` command: build an index from a .npy file, search it, describe it, serve indexes over HTTP.

    adanns build BASE.npy -o INDEX [--kind ivf|flat|opq|ivfopq|binary|graph] [--nlist N] [--cluster-dim D] [--metric cosine|ip|l2]
    adanns tune INDEX QUERIES.npy [-k 10] [--sample N] [--seed S]      # stores the frontier in INDEX
    adanns search INDEX QUERIES.npy [-k 10] [--target-recall R | --budget-mflops B | --nprobe N ...] [-o OUT.npz]
    adanns info INDEX
    adanns serve --data-dir DIR [--index NAME=INDEX] [--host 127.0.0.1] [--port 8000] [--api-key KEY]   # extra [server]
    adanns cluster build INPUT -o MANIFEST_DIR --shards N [--kind ivf|ivfopq|flat]   # extra [ray]
    adanns cluster serve MANIFEST_DIR [--replicas R] [--port P]                      # extra [ray]
    adanns bench --base B.npy --queries Q.npy [--gt GT.npy] --out DIR [--peers faiss,hnswlib] [--quick]  # extra [bench]

`search` with no knobs uses the tuned setting for recall@k 0.95 when the index is tuned (`adanns tune`), and
otherwise nprobe = ceil(2 sqrt(nlist)) for IVF kinds (recall@10 0.93-0.96 on WordNet, see README); it says
which on stderr. Errors print one line on stderr and exit with status 1 (2 for a bad command line).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
import warnings

import numpy as np

import adanns
from adanns import kinds as registry
from adanns import tuning


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


def _check_finite(block: np.ndarray, path: str, rows) -> None:
    """NaN/inf in the rows just read: name the file and the row in it (``rows[i]`` is block row i's row)."""
    bad = ~np.isfinite(block).all(axis=1)
    if bad.any():
        raise ValueError(f"{path!r} row {int(rows[int(np.argmax(bad))])} contains NaN or infinity; drop or fix "
                         "such rows before building")


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


# The CLI option behind each build parameter of the kinds table (adanns/kinds/registry.py), where it differs.
_OPTION = {"opq": "no_opq"}


def auto_nlist(n: int) -> int:
    """Lists for n vectors when --nlist is not given: the power of two nearest 4 sqrt(n) (faiss's guidance is
    4-16 sqrt(n)), but at least ~39 vectors per list so k-means has points to place each centroid (1024 for the
    117k WordNet corpus, 32 for 2,000 vectors)."""
    if n < 78:
        return 1
    return min(2 ** round(math.log2(4 * math.sqrt(n))), 2 ** int(math.log2(n // 39)))


def _build_params(args, n: int, dim: int) -> tuple[str, dict]:
    """(metric, params) for the kind from the options the user gave, checked and completed by the kinds
    table as the service does."""
    kind = registry.get(args.kind)
    metric = args.metric or kind.default_metric
    given = {}
    for name in kind.params:
        value = getattr(args, _OPTION.get(name, name), None)
        if name == "opq":
            value = not value
        elif name == "nlist" and value is None:
            value = auto_nlist(n)
        if value is not None:
            given[name] = value
    try:
        return metric, registry.resolve(args.kind, dim, metric, given)
    except ValueError as e:  # name the option, not the service's parameter
        msg = re.sub(r"params\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(e))
        raise ValueError(f"--kind {args.kind}: {msg}") from None


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
    metric, params = _build_params(args, n, dim)
    index = registry.get(args.kind).new(dim, metric, params)
    if params.get("train_size") is not None:
        # Train on a seeded random sample (sorted rows: sequential reads of the mapped file).
        m = min(n, params["train_size"])
        rows = np.sort(np.random.default_rng(args.seed).choice(n, size=m, replace=False))
        with tqdm(total=m, desc="training", unit="vec", disable=args.quiet) as bar:
            sample = np.empty((m, dim), np.float32)
            for a, b in _chunks(m, args.chunk_size):
                sample[a:b] = base[rows[a:b]]
                _check_finite(sample[a:b], args.base, rows[a:b])
            index.train(sample, threads=args.threads)
            bar.update(m)
        del sample
    with tqdm(total=n, desc="adding", unit="vec", disable=args.quiet) as bar:
        for a, b in _chunks(n, args.chunk_size):
            chunk = np.ascontiguousarray(base[a:b], dtype=np.float32)
            _check_finite(chunk, args.base, range(a, b))
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


# With no knobs, a tuned index answers at this recall (--target-recall overrides it).
DEFAULT_TARGET_RECALL = 0.95
_KNOBS = ("nprobe", "search_dim", "ef", "rerank_dim", "rerank_k")


def default_nprobe(nlist: int) -> int:
    """Lists probed by an untuned IVF search with no knobs: ceil(2 sqrt(nlist)). Chosen on WordNet
    (all-MiniLM-L6-v2, cosine; README): recall@10 0.93-0.96 for nlist 16..1024 on the 5,000-vector sample
    and 0.96 for nlist 1024 on the 117k corpus, scanning 6% of the lists there (nprobe 1: 0.45)."""
    return min(nlist, math.ceil(2 * math.sqrt(nlist)))


def _flags(params: dict) -> str:
    """Search kwargs as the command-line flags that give them."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in params.items()) or "(no knobs)"


def _tune_hint(args, query_dim: int) -> str:
    return f"run `adanns tune {args.index} QUERIES.npy -k {args.k}` (with {query_dim}-dim queries)"


def _frontier(index, args, query_dim: int):
    """(the frontier tuned for this k and query length or None, why not)."""
    frontiers = index.frontiers() if hasattr(index, "frontiers") else {}
    if not frontiers:
        return None, "the index is not tuned"
    if args.k not in frontiers:
        return None, f"the index is tuned for k in {sorted(frontiers)}, not k={args.k}"
    f = frontiers[args.k]
    if f.query_dim != query_dim:
        return None, f"the index was tuned for k={args.k} with {f.query_dim}-dim queries, not {query_dim}-dim ones"
    return f, ""


def _choose(frontier, target_recall=None, budget_mflops=None):
    """The frontier's point; its warning (target or budget out of reach) goes to stderr as a note."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        point = frontier.choose(target_recall, budget_mflops)
    for w in caught:
        print(f"adanns search: note: {w.message}", file=sys.stderr)
    return point


def _untuned_default(index, k: int) -> tuple[dict, str]:
    """Knobs for a search with none given on an untuned index, and how they were chosen. Measured on the
    WordNet sample (tests/data/wordnet-sample, recall@10): PQ codes alone 0.71-0.73, re-ranking 5k candidates
    with the stored vectors 0.93 (ivfopq nlist 64) - 0.99 (opq) for ~3% more MFLOPs; binary codes: the
    API's shortlist of max(4k, 40) 0.60, 50k candidates 0.90."""
    params, how = {}, []
    if isinstance(index, (adanns.IVFIndex, adanns.IVFOPQIndex)):
        params["nprobe"] = default_nprobe(index.nlist)
        how.append(f"nprobe {params['nprobe']} = ceil(2 sqrt(nlist {index.nlist}))")
    if isinstance(index, (adanns.OPQIndex, adanns.IVFOPQIndex)) and index.store_vectors:
        params["rerank_k"] = 5 * k
        how.append(f"re-ranking {5 * k} candidates (5k) with the stored vectors")
    if isinstance(index, adanns.BinarizedIndex):
        params["rerank_k"] = 50 * k
        how.append(f"a Hamming shortlist of {50 * k} (50k) re-scored with the stored vectors")
    if isinstance(index, adanns.FlatIndex):
        how.append("an exact search (flat index)")
    return params, ", ".join(how) or "the index's defaults"


def _settings(args, index, query_dim: int) -> dict:
    """The search kwargs: the knobs given, a tuned setting for --target-recall / --budget-mflops, or a default;
    says on stderr which was used when the user gave no knobs."""
    given = {name: getattr(args, name) for name in _KNOBS if getattr(args, name) is not None}
    ivf = isinstance(index, (adanns.IVFIndex, adanns.IVFOPQIndex))
    if "nprobe" in given and not ivf:
        raise ValueError("--nprobe applies to IVF and IVF-OPQ indexes only")
    if "search_dim" in given and not isinstance(index, (adanns.FlatIndex, adanns.IVFIndex)):
        raise ValueError("--search-dim applies to flat and IVF indexes only")
    if "ef" in given and not isinstance(index, adanns.GraphIndex):
        raise ValueError("--ef applies to graph indexes only")
    if args.target_recall is not None and args.budget_mflops is not None:
        raise ValueError("give --target-recall or --budget-mflops, not both")
    if args.target_recall is not None or args.budget_mflops is not None:
        if given:
            raise ValueError(f"--target-recall / --budget-mflops choose the search settings; do not also give "
                             f"{_flags(given)}")
        tuning.check_target(args.target_recall, args.budget_mflops)
        frontier, why = _frontier(index, args, query_dim)
        if frontier is None:
            raise ValueError(f"{why}: {_tune_hint(args, query_dim)}, then search with --target-recall or "
                             "--budget-mflops")
        point = _choose(frontier, args.target_recall, args.budget_mflops)
        wanted = (f"target recall@{args.k} {args.target_recall}" if args.target_recall is not None
                  else f"budget {args.budget_mflops} MFLOPs")
        print(f"adanns search: tuned setting for {wanted}: {_flags(point.params)} (tuning sample: recall "
              f"{point.recall:.3f}, bound {point.recall_lcb:.3f}, {point.mflops:.3f} MFLOPs)", file=sys.stderr)
        return dict(point.params)
    if given:
        if ivf and "nprobe" not in given:
            given["nprobe"] = default_nprobe(index.nlist)
            print(f"adanns search: no --nprobe given: using nprobe {given['nprobe']} = ceil(2 sqrt(nlist "
                  f"{index.nlist}))", file=sys.stderr)
        return given
    frontier, why = _frontier(index, args, query_dim)
    if frontier is not None:
        point = _choose(frontier, DEFAULT_TARGET_RECALL)
        print(f"adanns search: no knobs given: the tuned setting for the default target recall@{args.k} "
              f"{DEFAULT_TARGET_RECALL}: {_flags(point.params)} (tuning sample: recall {point.recall:.3f}, "
              f"{point.mflops:.3f} MFLOPs; --target-recall or --budget-mflops choose another)", file=sys.stderr)
        return dict(point.params)
    params, how = _untuned_default(index, args.k)
    hint = f"; {_tune_hint(args, query_dim)} to search by --target-recall" if hasattr(index, "tune") else ""
    print(f"adanns search: no knobs given and {why}: using {how}{hint}", file=sys.stderr)
    return params


def search(args) -> int:
    index = adanns.load(args.index, mmap=True)
    queries = _load_matrix(args.queries, "queries")
    params = _settings(args, index, queries.shape[1])
    parts = []
    for a, b in _chunks(queries.shape[0], args.batch_size):
        chunk = np.ascontiguousarray(queries[a:b], dtype=np.float32)
        _check_finite(chunk, args.queries, range(a, b))
        parts.append(index.search(chunk, k=args.k, threads=args.threads, **params))
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


def tune(args) -> int:
    from tqdm import tqdm

    index = adanns.load(args.index, mmap=True)
    if not hasattr(index, "tune"):
        raise ValueError(f"{args.index!r} holds binary codes without a binarizer; only float-vector indexes are tuned")
    queries = _load_matrix(args.queries, "queries")
    q = np.ascontiguousarray(queries, dtype=np.float32)
    _check_finite(q, args.queries, range(len(q)))
    gt = None
    if args.gt:
        gt = np.load(args.gt, allow_pickle=False)
    nq = min(len(q), args.sample or len(q))
    t0 = time.perf_counter()
    with tqdm(total=len(index.default_grid(args.k, q.shape[1])), desc=f"tuning on {nq} queries", unit="setting",
              disable=args.quiet) as bar:
        frontier = index.tune(q, k=args.k, gt=gt, sample=args.sample, seed=args.seed, threads=args.threads,
                              progress=bar.update)
    index.save(args.index)  # atomic: a new file renamed over the mapped one
    print(f"tuned k={args.k} on {frontier.nq} {frontier.query_dim}-dim queries in {time.perf_counter() - t0:.1f} s; "
          f"frontier stored in {args.index}:")
    print(f"{'recall':>7s} {'bound':>7s} {'MFLOPs':>8s}  setting")
    for p in frontier.points:
        print(f"{p.recall:7.3f} {p.recall_lcb:7.3f} {p.mflops:8.3f}  {_flags(p.params)}")
    print(f"`adanns search {args.index} QUERIES.npy -k {args.k}` now uses the cheapest setting whose recall bound "
          f"reaches {DEFAULT_TARGET_RECALL}; --target-recall / --budget-mflops choose another")
    return 0


def _sizes(index, path: str) -> str:
    return (f"memory     {index.nbytes} bytes once loaded (vectors or codes, ids, centroids)\n"
            f"file       {os.path.getsize(path)} bytes on disk")


def info(args) -> int:
    index = adanns.load(args.index, mmap=True, verify=False)
    kind = {adanns.FlatIndex: "flat", adanns.IVFIndex: "ivf", adanns.OPQIndex: "opq", adanns.IVFOPQIndex: "ivfopq",
            adanns.BinarizedIndex: "binary", adanns.BinaryIndex: "binary codes", adanns.GraphIndex: "graph"}[type(index)]
    if kind == "binary codes":
        print(f"kind       {kind}\nbits       {index.nbits}\ncodes      {len(index)}")
        print(_sizes(index, args.index))
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
    frontiers = index.frontiers()
    if frontiers:
        print("tuned      " + "; ".join(f"k={k} ({f.query_dim}-dim queries, {len(f.points)} settings)"
                                        for k, f in sorted(frontiers.items())))
    else:
        print(f"tuned      no (run `adanns tune {args.index} QUERIES.npy -k 10`)")
    print(_sizes(index, args.index))
    return 0


def _index_specs(args) -> list:
    """[(name, file)] from the --index NAME=FILE options; each file must be an index that loads, unless NAME is
    already in --data-dir (then it is not imported again)."""
    out = []
    for spec in args.index or ():
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--index takes NAME=FILE, got {spec!r}")
        if not os.path.isdir(os.path.join(args.data_dir, name)):
            try:
                adanns.load(path, mmap=True, verify=False)  # a missing or foreign file fails here, cheaply
            except (OSError, ValueError) as e:
                raise ValueError(f"--index {spec}: {e}") from None
        out.append((name, path))
    return out


def serve(args) -> int:
    try:
        import uvicorn

        from .server import Settings, asgi_app
    except ImportError as e:
        raise RuntimeError(f"the service needs the 'server' extra (pip install 'adanns[server]'): {e}") from None
    imports = _index_specs(args)  # before anything is created: a wrong path leaves no data directory behind
    settings = Settings(data_dir=args.data_dir)
    if args.api_key is not None:
        settings.api_key = args.api_key
    for name in ("public_docs", "max_queries", "max_result_slots", "max_write_vectors", "body_timeout"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    if args.max_body_mb:
        settings.max_body_bytes = int(args.max_body_mb * (1 << 20))
    if args.workers:
        settings.workers = args.workers
    if args.search_workers:
        settings.search_workers = args.search_workers
    if args.snapshot_every:
        settings.snapshot_every = args.snapshot_every
    settings.check()
    if imports:
        from .server.errors import ApiError
        from .server.store import Store

        store = Store(settings.data_dir, settings.snapshot_every)
        try:
            for name, path in imports:
                if name in store.names():
                    print(f"index {name!r} already in {settings.data_dir}; not importing {path}")
                    continue
                try:
                    c = store.import_file(name, path)
                except ApiError as e:
                    raise ValueError(e.detail) from None
                print(f"imported {path} as index {name!r} ({c.info()['count']} vectors; copied into "
                      f"{os.path.join(settings.data_dir, name)}, the original is not used again)")
        finally:
            store.close()
    # No proxy-header rewriting (the service is addressed directly) and no Server header: less work
    # on every request.
    uvicorn.run(asgi_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log, proxy_headers=False, server_header=False)
    return 0


def repair(args) -> int:
    from .server.repair import RepairError, repair as repair_collection

    try:
        lines = repair_collection(args.folder, discard_snapshot=args.discard_snapshot, dry_run=args.dry_run)
    except RepairError as e:
        raise ValueError(str(e)) from None
    print("\n".join(lines))
    return 0


def bench(args) -> int:
    from .bench.run import main as run_bench

    return run_bench(args)


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's layout and appends "(default: X)" to an option's help when it has a real default
    (options whose default depends on other values say so in their own help)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="adanns", description=__doc__, formatter_class=_Help)
    ap.add_argument("--version", action="version", version=f"adanns {adanns.__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, description: str | None = None):
        return sub.add_parser(name, help=help, description=description or help, formatter_class=_Help)

    b = command("build", "build an index from a .npy file of embeddings")
    b.add_argument("base", help="(n, d) float .npy (float16 is converted chunk by chunk)")
    b.add_argument("-o", "--output", required=True, help="index file to write")
    b.add_argument("--kind", choices=("ivf", "flat", "opq", "ivfopq", "binary", "graph"), default="ivf",
                   help="ivf: inverted lists of full vectors (AdANNS-IVF); flat: exhaustive; opq / ivfopq: PQ codes "
                        "(+ IVF) with re-ranking; binary: sign codes with re-scoring; graph: HNSW walked on a "
                        "prefix, re-ranked with the full vectors")
    b.add_argument("--metric", choices=("cosine", "ip", "l2"),
                   help="similarity (default: cosine for flat and ivf; ip for opq, ivfopq and binary, which do not "
                        "support cosine, and for graph). cosine renormalises query and row prefixes, so a Matryoshka prefix query "
                        "ranks like a query of that length; ip ranks prefixes by their un-normalised inner product; "
                        "l2 is the squared distance")
    b.add_argument("--ids", help="(n,) int64 .npy of ids (default: 0..n-1)")
    b.add_argument("--nlist", type=_positive,
                   help="ivf/ivfopq: inverted lists (k-means centroids); default: the power of two nearest 4 sqrt(n), "
                        "at most n/39 (1024 for 117k vectors)")
    b.add_argument("--cluster-dim", type=_positive,
                   help="ivf/ivfopq: leading coordinates k-means clusters on (default: all)")
    b.add_argument("--m", type=_positive, default=32, help="opq/ivfopq: bytes (sub-quantizers) per code")
    b.add_argument("--pq-dim", type=_positive, help="opq/ivfopq: leading coordinates the codes quantize (default: all)")
    b.add_argument("--nbits", type=int, choices=(4, 8), default=8, help="opq/ivfopq: bits per sub-code")
    b.add_argument("--no-opq", action="store_true", help="opq/ivfopq: plain PQ, no learned rotation")
    b.add_argument("--bits", type=_positive, help="binary: code bits (multiple of 8; default: dim rounded down)")
    b.add_argument("--rotation", choices=("itq",), help="binary: learn an ITQ rotation before the signs (default: none)")
    b.add_argument("--M", type=_positive, default=32, help="graph: links per node (2M on the bottom level)")
    b.add_argument("--ef-construction", type=_positive, default=200, help="graph: beam width of insertion")
    b.add_argument("--graph-dim", type=_positive, help="graph: coordinates the graph is built on (default: all)")
    b.add_argument("--storage", choices=("float32", "sq8"), default="float32",
                   help="graph: what the walk scores: the float prefix, or its 8-bit codes (a quarter of the bytes)")
    b.add_argument("--train-size", type=_positive,
                   help="training sample size (default ~40 per centroid: 40 * nlist, 40 * 2^nbits)")
    b.add_argument("--niter", type=int, default=20, help="k-means iterations")
    b.add_argument("--seed", type=int, default=0, help="training sample and k-means seed")
    b.add_argument("--chunk-size", type=_positive, default=65536, help="rows read and added at a time")
    b.add_argument("--threads", type=_positive, help="threads (default: all cores)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=build)

    t = command("tune", "measure search settings on sample queries and store the frontier in the index file",
                "Measures recall@k and MFLOPs of the index kind's grid of search settings on the queries (exact "
                "neighbours found by an exact search of the index, or --gt), keeps the Pareto frontier and stores "
                "it in INDEX (rewritten atomically). Then `adanns search` picks settings by --target-recall or "
                "--budget-mflops, and uses the target 0.95 when given no knobs.")
    t.add_argument("index", help="index file built by `adanns build`")
    t.add_argument("queries", help="(nq, d') float .npy of queries like the ones you will search with (the same "
                                   "length d'; a few hundred are enough)")
    t.add_argument("-k", type=_positive, default=10, help="neighbours per query the frontier is for")
    t.add_argument("--sample", type=_positive, help="tune on a seeded random sample of N queries (default: all)")
    t.add_argument("--seed", type=int, default=0, help="seed of --sample")
    t.add_argument("--gt", help="(nq, >= k) int .npy of the exact neighbour ids of the queries (default: computed)")
    t.add_argument("--threads", type=_positive, help="threads (default: all cores)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=tune)

    s = command("search", "search an index with a .npy of queries (any prefix length)",
                "Searches with the knobs given; or with the tuned setting for --target-recall / --budget-mflops "
                "(after `adanns tune`); or, with neither, with the tuned setting for recall 0.95 when the index "
                "is tuned and otherwise with defaults that reach a reasonable recall (IVF kinds: nprobe "
                "ceil(2 sqrt(nlist)); PQ kinds: re-rank 5k candidates; binary: a 50k shortlist). The setting "
                "used is printed on stderr.")
    s.add_argument("index", help="index file")
    s.add_argument("queries", help="(nq, d') float .npy; d' < d means Matryoshka prefix queries")
    s.add_argument("-k", type=_positive, default=10, help="neighbours per query")
    s.add_argument("--target-recall", type=float,
                   help="cheapest tuned setting whose recall@k (lower bound on the tuning queries) reaches this "
                        f"(default with no knobs on a tuned index: {DEFAULT_TARGET_RECALL})")
    s.add_argument("--budget-mflops", type=float,
                   help="most accurate tuned setting within this many MFLOPs per query (default: none; a target)")
    s.add_argument("--nprobe", type=_positive,
                   help="ivf/ivfopq: lists scanned per query (default: ceil(2 sqrt(nlist)), or the tuned "
                        "setting when no knob is given)")
    s.add_argument("--search-dim", type=_positive,
                   help="flat/ivf: leading coordinates the scan uses (default: the query length)")
    s.add_argument("--ef", type=_positive, help="graph: beam width of the search (default: the index's, 64)")
    s.add_argument("--rerank-dim", type=_positive,
                   help="coordinates the shortlist is re-scored with (default: the query length)")
    s.add_argument("--rerank-k", type=_positive,
                   help="shortlist re-scored with --rerank-dim (default: none for flat/ivf, 5k for opq/ivfopq, "
                        "50k for binary)")
    s.add_argument("--threads", type=_positive, help="threads (default: all cores)")
    s.add_argument("--batch-size", type=_positive, default=4096, help="queries read and searched at a time")
    s.add_argument("-o", "--output", help=".npz to write (ids, scores, mflops); default: print the first rows")
    s.add_argument("--show", type=int, default=5, help="rows printed without -o")
    s.set_defaults(func=search)

    i = command("info", "describe an index file (kind, sizes, tuning)")
    i.add_argument("index", help="index file")
    i.set_defaults(func=info)

    v = command("serve", "serve indexes over HTTP (REST, OpenAPI at /docs); needs pip install 'adanns[server]'")
    v.add_argument("--data-dir", required=True, help="folder holding the indexes (created if missing)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on")
    v.add_argument("--port", type=int, default=8000, help="port to listen on")
    v.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: ADANNS_API_KEY, else none)")
    v.add_argument("--max-body-mb", type=float, help="request body limit in MiB (default 64)")
    v.add_argument("--workers", type=_positive,
                   help="threads for writes, search batches too large to merge and other blocking work (default: "
                        "ADANNS_WORKERS, else max(4, cores))")
    v.add_argument("--search-workers", type=_positive,
                   help="threads running searches; searches that wait for one are merged into one native call "
                        "(default: ADANNS_SEARCH_WORKERS, else one per core but the event loop's, at least 1)")
    v.add_argument("--snapshot-every", type=_positive, help="logged writes between snapshots (default 1000)")
    v.add_argument("--index", action="append", metavar="NAME=FILE",
                   help="serve an index file built by 'adanns build' under NAME: copied into --data-dir (the "
                        "served copy takes the writes; FILE is not used again) unless NAME exists there; "
                        "repeatable (default: none)")
    v.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn log level")
    v.add_argument("--access-log", action="store_true", help="log every request")
    v.add_argument("--public-docs", action="store_true", default=None,
                   help="serve /docs, /redoc and /openapi.json without the API key (default: they need it)")
    v.add_argument("--max-queries", type=_positive, help="queries per search request (default 10000)")
    v.add_argument("--max-result-slots", type=_positive, help="queries x k per search request (default 100000)")
    v.add_argument("--max-write-vectors", type=_positive, help="vectors per upsert or delete (default 100000)")
    v.add_argument("--body-timeout", type=float, help="seconds to receive a whole request body (default 60)")
    v.set_defaults(func=serve)

    r = command("repair", "recover an index the service reports as failed (service stopped)",
                "Loads DATA_DIR/NAME as far as it can, reports every log record and byte range it skips, keeps "
                "the original files in NAME.before-repair-<time>, and writes a fresh snapshot and an empty log.")
    r.add_argument("folder", help="the index folder: DATA_DIR/NAME")
    r.add_argument("--discard-snapshot", action="store_true",
                   help="when the snapshot itself is damaged, rebuild from the log alone (its vectors are lost)")
    r.add_argument("--dry-run", action="store_true", help="report what would be recovered; write nothing")
    r.set_defaults(func=repair)

    bb = command("bench", "recall vs MFLOPs / QPS of adanns and its peers on your embeddings",
                 "Sweeps adanns index kinds and settings and the peers' equivalents on the same data in one "
                 "process; writes results.json, results.md and PNG plots to --out. Metric: inner product. The "
                 "peers and the plots need pip install 'adanns[bench]' (faiss-cpu, hnswlib, matplotlib); missing "
                 "ones are skipped.")
    bb.add_argument("--base", required=True, help="(n, d) float .npy")
    bb.add_argument("--queries", required=True, help="(nq, d) float .npy")
    bb.add_argument("--gt", help="(nq, >= k) int .npy of exact neighbour ids by inner product (default: computed "
                                 "and cached in --out)")
    bb.add_argument("--labels-base", help="(n,) int .npy: class labels, for top-1 accuracy and mAP@10 (default: none, "
                                          "no label metrics)")
    bb.add_argument("--labels-queries", help="(nq,) int .npy: the queries' class labels (default: none)")
    bb.add_argument("--out", required=True, help="folder for results.json, results.md, plots, cached ground truth")
    bb.add_argument("--peers", default="faiss,hnswlib",
                    help="comma-separated: faiss, hnswlib, or none (missing ones are skipped)")
    bb.add_argument("--families", default="flat,ivf,opq,ivfopq,binary",
                    help="adanns kinds to sweep (also: graph)")
    bb.add_argument("--quick", action="store_true", help="a small sweep (minutes on 100k vectors)")
    bb.add_argument("-k", type=_positive, default=10, help="neighbours per query")
    bb.add_argument("--seed", type=int, default=0, help="training samples and the tuning split")
    bb.add_argument("--threads", type=_positive, help="'all threads' figures use this many (default: all cores)")
    bb.add_argument("--max-queries", type=_positive, help="use the first N queries only (default: all)")
    bb.add_argument("--time-all", action="store_true", help="time every setting, not only near-frontier ones")
    bb.add_argument("--repeats", type=_positive, help="batch timings: best of N (default 1 with --quick, else 3)")
    bb.add_argument("--latency-queries", type=_positive,
                    help="single-query calls for p50/p99 (default 50 with --quick, else 200)")
    bb.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    bb.add_argument("--no-tune-check", action="store_true", help="skip the held-out check of target_recall")
    bb.add_argument("--name", help="corpus name in titles (default: the base file's folder)")
    bb.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    bb.set_defaults(func=bench)

    from .cluster.cli import add_commands as add_cluster_commands  # Ray is imported only when they run

    add_cluster_commands(command, _positive, _Help)
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
