"""Is the HTTP service close to the Python API under load?

16 concurrent clients send 20,000 single-query searches over loopback to `adanns serve` holding a
100k x 384 AdANNS-IVF index; then 16 threads call `IVFIndex.search` directly on the same index file with
the same queries and knobs. Prints errors, recall@10 of the answers, p50/p99 latency, both throughputs and
their ratio, and the CPU time one request costs (server event loop, server search threads, client).
Targets (issue 4): 0 errors, p50 < 5 ms, service throughput >= 50% of direct.

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


async def http_clients(port: int, requests: list[bytes], n_clients: int, per_client: int):
    """Closed-loop keep-alive clients: (latencies, answers' ids per request index, errors, wall seconds)."""
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
            try:
                ids = json.loads(body)["results"][0]["ids"]
                ok = head.startswith(b"HTTP/1.1 200 ") and len(ids) == 10
            except (ValueError, KeyError, IndexError):
                ok = False
            if ok:
                answers[n] = ids
            errors[0] += not ok
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

    with tempfile.TemporaryDirectory(prefix="adanns-load-") as tmp:
        t0 = time.perf_counter()
        index = adanns.IVFIndex(dim, nlist=args.nlist, cluster_dim=min(args.cluster_dim, dim), seed=args.seed)
        index.train(base)
        index.add(base)
        index_path = os.path.join(tmp, "load.adanns")
        index.save(index_path)
        build_s = time.perf_counter() - t0
        print(f"index: {label}, nlist {args.nlist}, d_c {index.cluster_dim}, built in {build_s:.1f} s; "
              f"knobs {knobs}")

        port = free_port()
        cmd = [sys.executable, "-m", "adanns.cli", "serve", "--data-dir", os.path.join(tmp, "data"),
               "--index", f"load={index_path}", "--port", str(port), "--log-level", "warning",
               "--workers", str(args.workers)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            for _ in range(1200):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            bodies = [http_request("/indexes/load/search", json.dumps({"vector": q.tolist(), **knobs}).encode())
                      for q in queries]
            asyncio.run(http_clients(port, bodies, args.clients, 20))  # warm-up
            cpu0, client0 = thread_cpu(proc.pid), os.times()
            lat, answers, errors, wall = asyncio.run(http_clients(port, bodies, args.clients, per_client))
            cpu1, client1 = thread_cpu(proc.pid), os.times()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)

    # CPU per request: the server's event loop (its main thread), its search threads, this client.
    spent = {tid: cpu1[tid] - cpu0.get(tid, 0.0) for tid in cpu1}
    loop_us = spent.get(proc.pid, 0.0) / total * 1e6
    search_us = sum(s for tid, s in spent.items() if tid != proc.pid) / total * 1e6  # the worker pool
    client_us = ((client1.user + client1.system) - (client0.user + client0.system)) / total * 1e6
    http_recall = _common.recall_at(np.array([answers[n] for n in sorted(answers)]),
                                    exact[np.array(sorted(answers)) % len(queries)])

    def direct_search(n):
        return index.search(queries[n % len(queries)][None, :], threads=1, **knobs).ids.shape == (1, 10)

    thread_clients(args.clients, 20, direct_search)
    dlat, derrors, dwall = thread_clients(args.clients, per_client, direct_search)
    direct = index.search(queries, threads=1, **knobs)

    p50, p99 = (float(np.percentile(lat, p) * 1e3) for p in (50, 99))
    dp50, dp99 = (float(np.percentile(dlat, p) * 1e3) for p in (50, 99))
    qps, dqps = total / wall, total / dwall
    ratio = qps / dqps
    cores = os.cpu_count() or 1
    per_request = loop_us + search_us + client_us
    rows = [["HTTP service", total, errors, http_recall, p50, p99, qps],
            ["Python API, same threads", total, derrors, _common.recall_at(direct.ids, exact), dp50, dp99, dqps]]
    cols = ["path", "requests", "errors", "recall@10", "p50 ms", "p99 ms", "req/s"]
    title = f"{args.clients} clients, {label}, {knobs}"
    _common.print_table(title, cols, rows)
    cpu_line = (f"CPU per request: server event loop {loop_us:.0f} us + server search threads {search_us:.0f} us "
                f"+ client {client_us:.0f} us = {per_request:.0f} us; {cores} cores cap the service at "
                f"~{cores / per_request * 1e6:,.0f} req/s, i.e. p50 >= ~{args.clients * per_request / cores / 1e3:.1f} ms "
                f"for {args.clients} closed-loop clients")
    print(cpu_line)
    verdict = {"errors == 0": errors == 0, "p50 < 5 ms": p50 < 5.0, "throughput >= 50% of direct": ratio >= 0.5}
    print(f"\nservice / direct throughput: {ratio:.1%}")
    for k, v in verdict.items():
        print(f"  {'PASS' if v else 'FAIL'}  {k}")
    if not args.no_record:
        summary = [f"service / direct throughput {ratio:.1%}; p50 {p50:.2f} ms, p99 {p99:.2f} ms; errors {errors}; "
                   f"recall@10 {http_recall:.3f}", cpu_line,
                   *[f"{'PASS' if v else 'FAIL'}: {k}" for k, v in verdict.items()]]
        paths = _common.write_results("service_load", {"loopback": {
            "params": vars(args), "knobs": knobs, "build_s": build_s, "ratio": ratio, "verdict": verdict,
            "cpu_us_per_request": {"server_loop": loop_us, "server_search": search_us, "client": client_us},
            "summary": summary,
            "tables": [{"title": title, "columns": cols, "rows": rows}]}})
        print("wrote", *paths)
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
