"""Is the HTTP service close to the Python API under load, and what does the service itself cost?

16 concurrent clients send 20,000 single-query searches over loopback to `adanns serve` holding a
100k x 384 AdANNS-IVF index; then 16 threads call `IVFIndex.search` directly on the same index file with
the same queries and knobs. Prints errors, recall@10 of the answers, p50/p99 latency, both throughputs and
their ratio, and the CPU time one request costs (server event loop, server search threads, client).
Then the framework's floor: the same clients against a trivial ASGI endpoint on the same server stack
(uvicorn, same loop and HTTP parser), which reads the body and answers a fixed result — its event-loop
CPU per request is what any service on this stack pays. Last, batches: `--batch` queries per request as
an `application/x-npy` body vs the Python API on the same batches with the same client threads.
Targets (issue 13): service event-loop CPU <= max(150 us, 2x the floor) per request, service throughput
>= 70% of direct with 16 clients, x-npy batch throughput within 10% of the API's.

Data: the first 100k rows of ../shared/data/wordnet-minilm (real embeddings; `--synthetic` for seeded
random unit vectors). Default knobs are an AdANNS setting at recall@10 ~0.9 (nlist 1024, d_c 64,
nprobe 32, d_s 128, re-rank 50 with all 384 dims). The clients are one asyncio loop holding 16 keep-alive
connections, each sending its next request when the previous answer is in (closed loop) and checking
every answer, so the load generator's own CPU, on the same cores as the server, stays small.
With closed-loop clients p50 ~ clients / throughput: p50 < 5 ms with 16 clients needs > 3,200 req/s.

    .venv/bin/python benchmarks/service_load.py [--requests 20000] [--clients 16] [--synthetic]
"""
from __future__ import annotations

import _common  # noqa: F401  (pins BLAS pools before numpy)

import argparse
import asyncio
import io
import json
import os
import signal
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


def load_data(args):
    """(base, queries, exact top-10 ids, label)."""
    data = Path(args.data)
    if not args.synthetic and (data / "base.npy").exists():
        base = np.ascontiguousarray(np.load(data / "base.npy", mmap_mode="r")[:args.n].astype(np.float32))
        queries = np.ascontiguousarray(np.load(data / "queries.npy").astype(np.float32))
        label = f"{data.name}[:{len(base)}]"
    else:
        if not args.synthetic:
            print(f"{data} not found: using synthetic data")
        rng = np.random.default_rng(args.seed)
        base = rng.standard_normal((args.n, args.dim)).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        queries = base[rng.choice(args.n, 1000, replace=False)] + \
            0.05 * rng.standard_normal((1000, args.dim)).astype(np.float32)
        label = f"synthetic {args.n} x {args.dim}"
    exact = adanns.FlatIndex(base.shape[1])
    exact.add(base)
    return base, queries, exact.search(queries, k=10).ids, label


# ------------------------------------------------------------------------------------ clients
def http_request(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


def first_ids(head: bytes, body: bytes):
    """The first result's ids of a JSON search answer, or None when it is not a good answer."""
    try:
        ids = json.loads(body)["results"][0]["ids"]
        return ids if head.startswith(b"HTTP/1.1 200 ") and len(ids) == 10 else None
    except (ValueError, KeyError, IndexError):
        return None


async def http_clients(port: int, requests: list[bytes], n_clients: int, per_client: int, check=first_ids):
    """Closed-loop keep-alive clients: (latencies, answers per request index, errors, wall seconds)."""
    latencies, answers, errors = [], {}, [0]

    async def client(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(per_client):
            n = c * per_client + i
            t0 = time.perf_counter()
            writer.write(requests[n % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:")
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            ids = check(head, body)
            if ids is not None:
                answers[n] = ids
            errors[0] += ids is None
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(n_clients)))
    return latencies, answers, errors[0], time.perf_counter() - t0


def thread_clients(n_clients: int, per_client: int, work):
    """Runs ``work(n)`` for n in each thread's share: (latencies, errors, wall seconds)."""
    latencies, errors, lock = [], [0], threading.Lock()
    barrier = threading.Barrier(n_clients + 1)

    def client(c):
        local, bad = [], 0
        barrier.wait()
        for i in range(per_client):
            t0 = time.perf_counter()
            try:
                ok = work(c * per_client + i)
            except Exception:
                ok = False
            local.append(time.perf_counter() - t0)
            bad += not ok
        with lock:
            latencies.extend(local)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, errors[0], time.perf_counter() - t0


_FLOOR_APP = """
import sys, uvicorn
ANSWER = b'{"results":[{"ids":[0,1,2,3,4,5,6,7,8,9],"scores":[1,1,1,1,1,1,1,1,1,1]}],"mflops":[1.0]}'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            proxy_headers=False, server_header=False)
"""


def wait_healthy(port: int, path: str = "/healthz") -> None:
    for _ in range(1200):
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}")
            return
        except httpx.TransportError:
            time.sleep(0.05)


def measure_server(proc, port, bodies, clients, per_client, check=first_ids):
    """Runs the clients against a started server: (latencies, answers, errors, wall, CPU seconds per thread)."""
    asyncio.run(http_clients(port, bodies, clients, 20, check))  # warm-up
    cpu0 = thread_cpu(proc.pid)
    lat, answers, errors, wall = asyncio.run(http_clients(port, bodies, clients, per_client, check))
    cpu1 = thread_cpu(proc.pid)
    return lat, answers, errors, wall, {tid: cpu1[tid] - cpu0.get(tid, 0.0) for tid in cpu1}


def thread_cpu(pid: int) -> dict[int, float]:
    """tid -> CPU seconds so far, from /proc (Linux); the main thread's tid is the pid."""
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_data_arg(ap)
    ap.add_argument("--synthetic", action="store_true", help="seeded random unit vectors instead of the corpus")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384, help="synthetic data only")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--cluster-dim", type=int, default=64)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--search-dim", type=int, default=128)
    ap.add_argument("--rerank-k", type=int, default=50, help="0: no re-ranking")
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=4, help="server threads for searches")
    ap.add_argument("--batch", type=int, default=100, help="queries per x-npy batch request")
    ap.add_argument("--batch-clients", type=int, default=4,
                    help="client threads for the batch comparison (4 on 2 cores keep a request in flight while "
                         "another is being sent or read)")
    ap.add_argument("--batch-requests", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true", help="do not write results/service_load.*")
    args = ap.parse_args()
    base, queries, exact, label = load_data(args)
    dim = base.shape[1]
    knobs = {"k": 10, "nprobe": args.nprobe, "search_dim": min(args.search_dim, dim)}
    if args.rerank_k:
        knobs.update(rerank_k=args.rerank_k, rerank_dim=dim)
    per_client = args.requests // args.clients
    total = per_client * args.clients
    batch_per_client = args.batch_requests // args.batch_clients
    batch_total = batch_per_client * args.batch_clients

    with tempfile.TemporaryDirectory(prefix="adanns-load-") as tmp:
        t0 = time.perf_counter()
        # metric ip, as the corpus' ground truth (and as the runs recorded before cosine became the default).
        index = adanns.IVFIndex(dim, nlist=args.nlist, cluster_dim=min(args.cluster_dim, dim), seed=args.seed,
                                metric="ip")
        index.train(base)
        index.add(base)
        index_path = os.path.join(tmp, "load.adanns")
        index.save(index_path)
        build_s = time.perf_counter() - t0
        print(f"index: {label}, nlist {args.nlist}, d_c {index.cluster_dim}, built in {build_s:.1f} s; "
              f"knobs {knobs}")
        bodies = [http_request("/indexes/load/search", json.dumps({"vector": q.tolist(), **knobs}).encode())
                  for q in queries]

        # The service.
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "adanns.cli", "serve", "--data-dir",
                                 os.path.join(tmp, "data"), "--index", f"load={index_path}", "--port", str(port),
                                 "--log-level", "warning", "--workers", str(args.workers)], stdout=subprocess.DEVNULL)
        try:
            wait_healthy(port)
            lat, answers, errors, wall, spent = measure_server(proc, port, bodies, args.clients, per_client)
            batches = []
            for b in range(0, len(queries) - args.batch + 1, args.batch):
                buf = io.BytesIO()
                np.save(buf, queries[b:b + args.batch])
                query = "&".join(f"{k}={v}" for k, v in knobs.items())
                # Arrays both ways: an x-npy batch in, an .npz (ids, scores, mflops) back.
                head = (f"POST /indexes/load/search?{query} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                        f"content-type: application/x-npy\r\naccept: application/x-npz\r\n"
                        f"content-length: {len(buf.getvalue())}\r\n\r\n")
                batches.append(head.encode() + buf.getvalue())

            def batch_ok(head, body):
                try:
                    ids = np.load(io.BytesIO(body))["ids"]
                    return ids if head.startswith(b"HTTP/1.1 200 ") and ids.shape == (args.batch, 10) else None
                except (ValueError, KeyError, OSError):
                    return None

            blat, banswers, berrors, bwall, _ = measure_server(proc, port, batches, args.batch_clients,
                                                               batch_per_client, batch_ok)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)

        # The framework's floor: the same stack and clients, a trivial endpoint.
        fport = free_port()
        floor = subprocess.Popen([sys.executable, "-c", _FLOOR_APP, str(fport)], stdout=subprocess.DEVNULL)
        try:
            wait_healthy(fport)
            _, _, ferrors, fwall, fspent = measure_server(floor, fport, bodies, args.clients, per_client)
        finally:
            floor.send_signal(signal.SIGINT)
            floor.wait(60)

    # CPU per request: the server's event loop (its main thread), its search threads.
    loop_us = spent.get(proc.pid, 0.0) / total * 1e6
    search_us = sum(s for tid, s in spent.items() if tid != proc.pid) / total * 1e6  # the worker pool
    floor_us = fspent.get(floor.pid, 0.0) / total * 1e6
    http_recall = _common.recall_at(np.array([answers[n] for n in sorted(answers)]),
                                    exact[np.array(sorted(answers)) % len(queries)])

    def direct_search(n):
        return index.search(queries[n % len(queries)][None, :], threads=1, **knobs).ids.shape == (1, 10)

    thread_clients(args.clients, 20, direct_search)
    dlat, derrors, dwall = thread_clients(args.clients, per_client, direct_search)
    direct = index.search(queries, threads=1, **knobs)
    nbatches = len(queries) // args.batch

    def direct_batch(n):
        b = (n % nbatches) * args.batch
        return index.search(queries[b:b + args.batch], threads=1, **knobs).ids.shape == (args.batch, 10)

    thread_clients(args.batch_clients, 2, direct_batch)
    dblat, dberrors, dbwall = thread_clients(args.batch_clients, batch_per_client, direct_batch)

    p50, p99 = (float(np.percentile(lat, p) * 1e3) for p in (50, 99))
    dp50, dp99 = (float(np.percentile(dlat, p) * 1e3) for p in (50, 99))
    qps, dqps = total / wall, total / dwall
    bqps, dbqps = batch_total * args.batch / bwall, batch_total * args.batch / dbwall
    ratio, bratio = qps / dqps, bqps / dbqps
    rows = [["HTTP service, 1 query per request", total, errors, http_recall, p50, p99, qps],
            ["Python API, same threads", total, derrors, _common.recall_at(direct.ids, exact), dp50, dp99, dqps],
            ["trivial ASGI endpoint (floor)", total, ferrors, None, None, None, total / fwall],
            [f"HTTP x-npy, {args.batch} queries per request ({args.batch_clients} clients)", batch_total, berrors,
             None, float(np.percentile(blat, 50) * 1e3), float(np.percentile(blat, 99) * 1e3), bqps],
            [f"Python API, {args.batch}-query batches ({args.batch_clients} threads)", batch_total, dberrors, None,
             float(np.percentile(dblat, 50) * 1e3), float(np.percentile(dblat, 99) * 1e3), dbqps]]
    cols = ["path", "requests", "errors", "recall@10", "p50 ms", "p99 ms", "queries/s"]
    title = f"{args.clients} clients, {label}, {knobs}"
    _common.print_table(title, cols, rows)
    cpu_line = (f"Event-loop CPU per request: service {loop_us:.0f} us, trivial endpoint on the same stack "
                f"{floor_us:.0f} us (the floor); service search threads {search_us:.0f} us per request")
    print(cpu_line)
    verdict = {"errors == 0": errors == 0 and berrors == 0,
               "service loop CPU <= max(150 us, 2x floor)": loop_us <= max(150.0, 2 * floor_us),
               "throughput >= 70% of direct (1 query per request)": ratio >= 0.7,
               "x-npy batch throughput >= 90% of direct": bratio >= 0.9}
    print(f"\nservice / direct throughput: {ratio:.1%} (single queries), {bratio:.1%} (x-npy batches of {args.batch})")
    for k, v in verdict.items():
        print(f"  {'PASS' if v else 'FAIL'}  {k}")
    if not args.no_record:
        summary = [f"service / direct throughput {ratio:.1%} (single queries), {bratio:.1%} (x-npy batches of "
                   f"{args.batch}); p50 {p50:.2f} ms, p99 {p99:.2f} ms; errors {errors + berrors}; recall@10 "
                   f"{http_recall:.3f}", cpu_line, *[f"{'PASS' if v else 'FAIL'}: {k}" for k, v in verdict.items()]]
        paths = _common.write_results("service_load", {"loopback": {
            "params": vars(args), "knobs": knobs, "build_s": build_s, "ratio": ratio, "batch_ratio": bratio,
            "verdict": verdict, "cpu_us_per_request": {"server_loop": loop_us, "server_search": search_us,
                                                       "floor_loop": floor_us},
            "summary": summary, "tables": [{"title": title, "columns": cols, "rows": rows}]}})
        print("wrote", *paths)
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
