"""What does sharding over Ray cost and buy on one machine? 1, 2 and 4 shards vs single-node `adanns serve`.

For each shard count: the sharded build's wall time (`adanns.cluster.build`: sample, train once, Ray Data
routing, one task per shard) next to the single-node build of the same index in this process; then REST
searches over loopback — closed-loop client threads, single-query JSON bodies, the same knobs — against the
cluster's Serve ingress and against `adanns serve` holding the same index, run one after the other in this
script: throughput, p50/p99 latency, recall@10 against the exact neighbours (gt.npy). The scatter-gather
overhead per query is the cluster's p50 minus the single node's at one client (no queueing): the ingress hop,
the per-shard calls through Serve handles and the merge.

Data: the first --n rows of ../shared/data/wordnet-minilm (or --synthetic). Index: AdANNS-IVF (nlist 1024,
clustered on 64 dims), searched with nprobe 32 and k 10. On a shared 2-vCPU machine the absolute figures are
noisy, and N shards on 2 cores add processes, not cores: read the per-shard figures as costs, not speed-ups.

    .venv/bin/python benchmarks/cluster_scaling.py [--n 100000] [--requests 600] [--clients 4] [--synthetic]
"""
from __future__ import annotations

import _common  # noqa: F401  (pins BLAS pools before numpy)

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

import adanns

sys.path.insert(0, str(_common.REPO_ROOT / "tests"))
from _server import free_port  # noqa: E402


def load(args):
    data = Path(args.data)
    if not args.synthetic and (data / "base.npy").exists():
        base = np.ascontiguousarray(np.load(data / "base.npy", mmap_mode="r")[:args.n].astype(np.float32))
        queries = np.ascontiguousarray(np.load(data / "queries.npy").astype(np.float32))
        label = f"{data.name}[:{len(base)}]"
    else:
        rng = np.random.default_rng(0)
        base = rng.standard_normal((args.n, 384)).astype(np.float32)
        queries = rng.standard_normal((1000, 384)).astype(np.float32)
        label = f"synthetic {args.n} x 384"
    exact = adanns.FlatIndex(base.shape[1], metric="ip")
    exact.add(base)
    gt = exact.search(queries, k=10, threads=2).ids
    return base, queries, gt, label


def drive(url: str, queries: np.ndarray, requests: int, clients: int, knobs: dict, api_key=None):
    """Closed-loop clients; returns (qps, p50 ms, p99 ms, ids of each query answered (first pass))."""
    latencies, answers, errors = [], {}, []
    per_client = requests // clients
    bodies = [httpx.Request("POST", "/", json={"vector": q.tolist(), "k": 10, **knobs}).content for q in queries]

    def client(c):
        with httpx.Client(base_url=url, timeout=60, headers={"content-type": "application/json"}) as h:
            for j in range(per_client):
                i = (c * per_client + j) % len(queries)
                t0 = time.perf_counter()
                r = h.post("/indexes/wn/search", content=bodies[i])
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(r.text)
                    continue
                answers[i] = r.json()["results"][0]["ids"]

    with httpx.Client(base_url=url, timeout=60) as h:  # warm-up
        for q in queries[:20]:
            h.post("/indexes/wn/search", json={"vector": q.tolist(), "k": 10, **knobs})
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    lat = sorted(latencies)
    return len(lat) / wall, 1000 * statistics.median(lat), 1000 * lat[int(0.99 * (len(lat) - 1))], answers


def recall(answers: dict, gt: np.ndarray) -> float:
    return float(np.mean([len(set(ids) & set(gt[i].tolist())) / 10 for i, ids in answers.items()]))


def wait(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/indexes/wn", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not serve index wn within {timeout} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    _common.add_data_arg(ap)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--requests", type=int, default=600, help="searches per measurement")
    ap.add_argument("--clients", default="1,4", help="closed-loop client threads (each count measured)")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()
    import ray
    from ray import serve

    from adanns.cluster import build
    from adanns.cluster.app import APP_NAME, application
    from adanns.server import Settings

    base, queries, gt, label = load(args)
    params = {"nlist": args.nlist, "cluster_dim": 64, "seed": 0}
    knobs = {"nprobe": args.nprobe}
    clients = [int(c) for c in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="adanns-cluster-bench-"))
    rows, summary = [], []
    try:
        np.save(work / "base.npy", base)
        # Single node: the same sample (train_size rows drawn by the same rule) and index, built in-process.
        from adanns.cluster.sources import open_source, read_sample
        from adanns.server import kinds

        resolved = kinds.resolve(base.shape[1], "cosine", "ivf", params)
        t0 = time.perf_counter()
        single = adanns.IVFIndex(base.shape[1], nlist=args.nlist, cluster_dim=64, seed=0)
        single.train(read_sample(open_source(work / "base.npy"), resolved["train_size"], 0))
        single.add(base)
        single_build = time.perf_counter() - t0
        single.save(work / "single.adanns")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "adanns.cli", "serve", "--data-dir", str(work / "single-data"),
                                 "--index", f"wn={work / 'single.adanns'}", "--port", str(port), "--log-level",
                                 "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait(f"http://127.0.0.1:{port}")
            single_runs = {c: drive(f"http://127.0.0.1:{port}", queries, args.requests, c, knobs) for c in clients}
        finally:
            proc.terminate()
            proc.wait(30)
        for c in clients:
            qps, p50, p99, ans = single_runs[c]
            rows.append(["adanns serve", 1, f"{single_build:.1f}", c, f"{qps:.0f}", f"{p50:.2f}", f"{p99:.2f}",
                         f"{recall(ans, gt):.3f}", "-"])
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        serve_port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
        url = f"http://127.0.0.1:{serve_port}"
        # Ray Data's first run starts its worker processes: a tiny build first, so the timed builds do not pay it.
        np.save(work / "warm.npy", base[:2000])
        build(work / "warm.npy", work / "warm", shards=1, kind="flat")
        per_shard = {}
        for shards in [int(s) for s in args.shards.split(",")]:
            t0 = time.perf_counter()
            m = build(work / "base.npy", work / f"m{shards}", shards=shards, kind="ivf", params=params, name="wn")
            build_s = time.perf_counter() - t0
            app = application(Settings(data_dir=work / f"data{shards}"), manifest_dir=str(work / f"m{shards}"),
                              cpus_per_copy=0)
            serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
            wait(url)
            info = httpx.get(url + "/indexes/wn").json()
            for c in clients:
                qps, p50, p99, ans = drive(url, queries, args.requests, c, knobs)
                overhead = p50 - single_runs[c][1]
                rows.append(["cluster (Ray Serve)", shards, f"{build_s:.1f}", c, f"{qps:.0f}", f"{p50:.2f}",
                             f"{p99:.2f}", f"{recall(ans, gt):.3f}", f"{overhead:+.2f}" if c == 1 else "-"])
                per_shard.setdefault(shards, {})[c] = {"qps": qps, "p50_ms": p50, "p99_ms": p99}
            # One shard call through a Serve handle, from this process: the hop the ingress makes per shard.
            handle = serve.get_deployment_handle("shard-0-copy-0", app_name=APP_NAME)
            q32 = queries[:1]
            for _ in range(10):
                handle.search.remote("wn", q32, 10, 1, knobs).result()
            calls = []
            for i in range(200):
                t1 = time.perf_counter()
                handle.search.remote("wn", queries[i:i + 1], 10, 1, knobs).result()
                calls.append(time.perf_counter() - t1)
            shard_call = 1000 * statistics.median(calls)
            search_alone = 1000 * _common.time_fn(lambda: single.search(queries[:200], k=10, threads=1, **knobs),
                                                  repeats=3).best / 200
            per_shard[shards]["shard_call_p50_ms"] = shard_call
            per_shard[shards]["single_node_search_ms_per_query_in_process"] = search_alone
            per_shard[shards]["bytes_per_shard"] = info["bytes"] / shards
            per_shard[shards]["build_seconds"] = build_s
            per_shard[shards]["build_phases"] = m.build
            serve.delete(APP_NAME)
        serve.shutdown()
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    columns = ["server", "shards", "build s", "clients", "QPS", "p50 ms", "p99 ms", "recall@10",
               "scatter-gather ms (p50 - single p50, 1 client)"]
    _common.print_table(f"{label}: IVF nlist {args.nlist} d_c 64, nprobe {args.nprobe}, k 10, JSON single-query "
                        "searches over loopback", columns, rows)
    summary.append(f"data {label}; single-node build {single_build:.1f} s; requests per row {args.requests}")
    for shards, f in per_shard.items():
        summary.append(f"{shards} shard(s): one shard call through a Serve handle p50 {f['shard_call_p50_ms']:.2f} ms "
                       f"(the search inside it ~{f['single_node_search_ms_per_query_in_process'] / shards:.2f} ms); "
                       f"{f['bytes_per_shard'] / 2**20:.1f} MiB per shard; build phases {f['build_phases']}")
    summary.append("shared 2-vCPU machine (4-5 other agents working): absolute figures are noisy; every row ran in "
                   "this one script, one after the other")
    _common.write_results("cluster_scaling", {"scaling": {
        "summary": summary, "per_shard": per_shard,
        "tables": [{"title": "Build, QPS and latency by shard count", "columns": columns, "rows": rows}]}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
