"""``adanns cluster build`` and ``adanns cluster serve`` (registered by adanns.cli; Ray is imported only when
one of them runs, so without the extra they fail with a message naming it)."""

from __future__ import annotations

import signal
import time

from . import EXTRA_MESSAGE, require_ray


def add_commands(command, positive, help_formatter) -> None:
    """Adds the ``cluster`` command with its two subcommands; ``command`` makes a top-level parser."""
    c = command("cluster", "build and serve sharded indexes on a Ray cluster; needs pip install 'adanns[ray]'",
                "Sharded indexes on a Ray cluster (a local one by default; --address auto joins the cluster that "
                "`ray start` runs on this node). " + EXTRA_MESSAGE + ".")
    sub = c.add_subparsers(dest="cluster_command", required=True, help="build or serve")

    b = sub.add_parser("build", help="build one index file per shard and a manifest, with Ray Data",
                       formatter_class=help_formatter,
                       description="Trains the coarse quantizer (and PQ codebooks) once on a sample, then reads, "
                                   "routes (id hash) and adds the rows of INPUT in parallel; writes shard-<s>.adanns "
                                   "files (each an ordinary index) and manifest.json to MANIFEST_DIR.")
    b.add_argument("input", help="an (n, d) float .npy, a directory of them, or Parquet (file or directory)")
    b.add_argument("-o", "--output", required=True, help="manifest directory to create (shared by every node)")
    b.add_argument("--shards", type=positive, required=True, help="number of shards")
    b.add_argument("--kind", choices=("ivf", "ivfopq", "flat"), default="ivf", help="index kind of every shard")
    b.add_argument("--metric", choices=("cosine", "ip", "l2"), help="default: cosine for flat/ivf, ip for ivfopq")
    b.add_argument("--name", default="default", help="the index name the cluster serves it under")
    b.add_argument("--nlist", type=positive, help="ivf/ivfopq: inverted lists (default 256)")
    b.add_argument("--cluster-dim", type=positive, help="ivf/ivfopq: coordinates k-means clusters on (default: all)")
    b.add_argument("--m", type=positive, help="ivfopq: bytes per code (default 32)")
    b.add_argument("--pq-dim", type=positive, help="ivfopq: coordinates the codes quantize (default: all)")
    b.add_argument("--nbits", type=int, choices=(4, 8), help="ivfopq: bits per sub-code (default 8)")
    b.add_argument("--no-opq", action="store_true", help="ivfopq: plain PQ, no learned rotation")
    b.add_argument("--train-size", type=positive, help="training sample rows (default ~40 per centroid)")
    b.add_argument("--niter", type=positive, help="k-means iterations (default 20)")
    b.add_argument("--seed", type=int, help="sample and k-means seed (default 0)")
    b.add_argument("--column", default="vector", help="Parquet: the vector column")
    b.add_argument("--id-column", help="Parquet: an int id column (default: row positions 0..n-1)")
    b.add_argument("--chunk-rows", type=positive, default=65536, help=".npy rows per Ray Data block")
    b.add_argument("--address", help="Ray cluster to join (default: a new local one; 'auto': this node's)")
    b.set_defaults(func=build)

    s = sub.add_parser("serve", help="serve a manifest with Ray Serve: the REST API of 'adanns serve'",
                       formatter_class=help_formatter,
                       description="One Serve deployment per copy of each shard (a durable collection on the "
                                   "node's disk, with its log and snapshots) behind an ingress that answers the "
                                   "same REST API as `adanns serve`. Runs until interrupted.")
    s.add_argument("manifest", nargs="?", help="manifest directory of 'adanns cluster build' (omit with --shards "
                                               "for empty shards that take indexes created over REST)")
    s.add_argument("--shards", type=positive, help="without a manifest: number of shards (default: the manifest's)")
    s.add_argument("--data-dir", help="folder of the shard copies' indexes (default: MANIFEST/serving; with several "
                                      "nodes, storage each copy's node sees again after a restart)")
    s.add_argument("--replicas", type=positive, default=1, help="copies of each shard (writes to all, reads to one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=int, default=8000, help="port to listen on")
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: ADANNS_API_KEY, else none)")
    s.add_argument("--public-docs", action="store_true", default=None, help="serve /docs without the API key")
    s.add_argument("--snapshot-every", type=positive, help="logged writes between snapshots (default 1000)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a shard before answering 503")
    s.add_argument("--cpus-per-copy", type=float,
                   help="CPUs Ray reserves for each shard copy (default: 1, less when the cluster has fewer CPUs "
                        "than copies)")
    s.add_argument("--address", help="Ray cluster to join (default: a new local one; 'auto': this node's)")
    s.set_defaults(func=serve)


def build(args) -> int:
    require_ray()  # before anything else: without the extra, the one message that names it
    from .builder import build as run_build

    params = {key: getattr(args, attr) for key, attr in
              (("nlist", "nlist"), ("cluster_dim", "cluster_dim"), ("m", "m"), ("pq_dim", "pq_dim"),
               ("nbits", "nbits"), ("train_size", "train_size"), ("niter", "niter"), ("seed", "seed"))
              if getattr(args, attr) is not None}
    if args.no_opq:
        params["opq"] = False
    if args.kind == "flat" and params:
        raise ValueError(f"kind flat takes no training parameters, got {sorted(params)}")
    m = run_build(args.input, args.output, args.shards, kind=args.kind, metric=args.metric, name=args.name,
                  params=params, column=args.column, id_column=args.id_column, chunk_rows=args.chunk_rows,
                  address=args.address)
    rows = ", ".join(str(s.rows) for s in m.shards)
    print(f"built {m.rows} rows of {m.kind} index {m.name!r} into {len(m.shards)} shards ({rows}) in "
          f"{m.build['seconds']:.1f} s; manifest {args.output}/manifest.json")
    return 0


def serve(args) -> int:
    require_ray()
    from pathlib import Path

    from ..server.config import Settings
    from .app import serve as run_serve

    if args.manifest is None and args.shards is None:
        raise ValueError("give a manifest directory, or --shards N for empty shards")
    data_dir = args.data_dir or (Path(args.manifest) / "serving" if args.manifest else None)
    if data_dir is None:
        raise ValueError("--data-dir is required without a manifest")
    settings = Settings(data_dir=data_dir)
    if args.api_key is not None:
        settings.api_key = args.api_key
    if args.public_docs is not None:
        settings.public_docs = args.public_docs
    if args.snapshot_every:
        settings.snapshot_every = args.snapshot_every
    settings.check()
    run_serve(settings, manifest_dir=args.manifest, shards=args.shards, replicas=args.replicas, host=args.host,
              port=args.port, address=args.address, timeout=args.timeout, cpus_per_copy=args.cpus_per_copy)
    print(f"serving on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    from ray import serve as ray_serve

    ray_serve.shutdown()
    return 0



