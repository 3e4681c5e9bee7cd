"""Is the HTTP service close to the Python API under load?

16 concurrent clients send 20,000 single-query searches over loopback to `adanns serve` holding a
100k x 384 AdANNS-IVF index (synthetic, seeded); the same 16 threads then call `IVFIndex.search` directly on
the same index file, same queries and knobs. Prints errors, p50/p99 latency, both throughputs and their ratio.
Targets (issue 4): 0 errors, p50 < 5 ms, service throughput >= 50% of direct. Client and server share the
machine's cores, so on a small machine the client's own CPU time counts against the service.

    .venv/bin/python benchmarks/service_load.py [--n 100000] [--requests 20000] [--clients 16]
"""
from __future__ import annotations

import _common  # noqa: F401  (pins BLAS pools before numpy)

import argparse
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np

import adanns

sys.path.insert(0, str(_common.REPO_ROOT / "tests"))
from _server import free_port  # noqa: E402


def npy(*arrays) -> bytes:
    buf = io.BytesIO()
    for a in arrays:
        np.save(buf, a)
    return buf.getvalue()


def run_clients(n_clients: int, per_client: int, work) -> tuple[list[float], int, float]:
    """Runs ``work(client_no, i)`` per_client times in each of n_clients threads: (latencies, errors, wall)."""
    latencies, errors, lock = [], [0], threading.Lock()
    barrier = threading.Barrier(n_clients + 1)

    def client(c):
        local, bad = [], 0
        state = {}
        barrier.wait()
        for i in range(per_client):
            t0 = time.perf_counter()
            try:
                ok = work(c, i, state)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=8)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true", help="do not write results/service_load.*")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[rng.choice(args.n, 1000, replace=False)] + 0.05 * rng.standard_normal((1000, args.dim)).astype(np.float32)
    knobs = {"k": 10, "nprobe": args.nprobe}
    per_client = args.requests // args.clients

    with tempfile.TemporaryDirectory(prefix="adanns-load-") as tmp:
        data_dir = os.path.join(tmp, "data")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "adanns.cli", "serve", "--data-dir", data_dir, "--port", str(port),
               "--log-level", "warning", "--workers", str(args.clients)]
        proc = subprocess.Popen(cmd)
        try:
            for _ in range(600):
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            t0 = time.perf_counter()
            with httpx.Client(base_url=url, timeout=600) as c:
                c.put("/indexes/load", json={"dim": args.dim, "kind": "ivf", "params": {
                    "nlist": args.nlist, "cluster_dim": 64, "seed": args.seed}}).raise_for_status()
                for a in range(0, args.n, 10_000):
                    c.post("/indexes/load/vectors", content=npy(x[a:a + 10_000], np.arange(a, min(args.n, a + 10_000))),
                           headers={"content-type": "application/x-npy"}).raise_for_status()
                c.post("/indexes/load/train").raise_for_status()  # a no-op when train_size was reached
                info = c.get("/indexes/load").json()
            build_s = time.perf_counter() - t0
            print(f"index over HTTP: {info['count']} x {info['dim']}, nlist {args.nlist}, trained {info['trained']}, "
                  f"{build_s:.1f} s")

            bodies = [json.dumps({"vector": q.tolist(), **knobs}).encode() for q in queries]
            headers = {"content-type": "application/json"}

            def http_search(cno, i, state):
                # One keep-alive connection per client, stdlib http.client: a lean client, so the
                # client's CPU (on the same cores) weighs as little as possible on the measurement.
                conn = state.get("conn") or state.setdefault("conn", http.client.HTTPConnection("127.0.0.1", port, timeout=30))
                conn.request("POST", "/indexes/load/search", body=bodies[(cno * per_client + i) % len(bodies)],
                             headers=headers)
                r = conn.getresponse()
                payload = r.read()
                return r.status == 200 and len(json.loads(payload)["results"][0]["ids"]) == 10

            run_clients(args.clients, 20, http_search)  # warm-up
            lat, errors, wall = run_clients(args.clients, per_client, http_search)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)

        # The same index, as the server snapshotted it on shutdown, called directly with the same threads.
        snap = next(p for p in os.listdir(os.path.join(data_dir, "load")) if p.startswith("snapshot-"))
        index = adanns.load(os.path.join(data_dir, "load", snap, "index.adanns"))

        def direct_search(cno, i, state):
            q = queries[(cno * per_client + i) % len(queries)]
            return index.search(q[None, :], threads=1, **knobs).ids.shape == (1, 10)

        run_clients(args.clients, 20, direct_search)
        dlat, derrors, dwall = run_clients(args.clients, per_client, direct_search)

    total = per_client * args.clients
    p50, p99 = (float(np.percentile(lat, p) * 1e3) for p in (50, 99))
    dp50, dp99 = (float(np.percentile(dlat, p) * 1e3) for p in (50, 99))
    qps, dqps = total / wall, total / dwall
    ratio = qps / dqps
    rows = [["HTTP service", total, errors, p50, p99, qps],
            ["Python API, same threads", total, derrors, dp50, dp99, dqps]]
    cols = ["path", "requests", "errors", "p50 ms", "p99 ms", "req/s"]
    _common.print_table(f"{args.clients} clients, k 10, nprobe {args.nprobe}, {args.n} x {args.dim}", cols, rows)
    verdict = {"errors == 0": errors == 0, "p50 < 5 ms": p50 < 5.0, "throughput >= 50% of direct": ratio >= 0.5}
    print(f"\nservice / direct throughput: {ratio:.1%}")
    for k, v in verdict.items():
        print(f"  {'PASS' if v else 'FAIL'}  {k}")
    if not args.no_record:
        summary = [f"service / direct throughput {ratio:.1%}; p50 {p50:.2f} ms, p99 {p99:.2f} ms; errors {errors}",
                   *[f"{'PASS' if v else 'FAIL'}: {k}" for k, v in verdict.items()]]
        paths = _common.write_results("service_load", {"loopback": {
            "params": vars(args), "build_s": build_s, "ratio": ratio, "verdict": verdict, "summary": summary,
            "tables": [{"title": f"{args.clients} concurrent clients, single-query searches", "columns": cols,
                        "rows": rows}]}})
        print("wrote", *paths)
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
