"""`make demo`: the product end to end on the WordNet sample shipped in the repository.

1. ``adanns build`` makes an AdANNS-IVF index file from ``base.npy`` (and ``adanns info`` describes it);
2. ``adanns serve --index wordnet=FILE`` serves that file in the background on a free loopback port;
3. the 200 queries are sent one request each with httpx, with several per-query settings, full 384-d
   vectors and 64-d Matryoshka prefixes; recall@10 against the exact ground truth (``gt.npy``), the MFLOPs
   the server reports and the HTTP latency are printed;
4. the server is stopped; its files are deleted with the temporary folder unless ``--keep DIR`` names a
   folder to keep them in.

    python -m adanns.demo --data tests/data/wordnet-sample [--keep DIR]

Needs the ``server`` extra (pip install 'adanns[server]').
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

import adanns

# (label, search parameters): one built index, knobs chosen per request.
SETTINGS = [
    ("rigid: d_s 384, nprobe 8", dict(nprobe=8, search_dim=384)),
    ("d_s 64, nprobe 8", dict(nprobe=8, search_dim=64)),
    ("d_s 64, nprobe 8, re-rank 50 @384", dict(nprobe=8, search_dim=64, rerank_dim=384, rerank_k=50)),
    ("d_s 128, nprobe 8, re-rank 50 @384", dict(nprobe=8, search_dim=128, rerank_dim=384, rerank_k=50)),
    ("d_s 64, nprobe 16, re-rank 100 @384", dict(nprobe=16, search_dim=64, rerank_dim=384, rerank_k=100)),
    ("d_s 32, nprobe 4, re-rank 100 @192", dict(nprobe=4, search_dim=32, rerank_dim=192, rerank_k=100)),
]
PREFIX = 64


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    hits = [len(np.intersect1d(f[:k], t[:k])) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str) -> None:
    """Runs the real ``adanns`` command (as ``python -m adanns.cli``, so no PATH is needed)."""
    subprocess.run([sys.executable, "-m", "adanns.cli", *args], check=True)


def _start_server(data_dir: str, index_file: str):
    import httpx

    url = f"http://127.0.0.1:{_free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "adanns.cli", "serve", "--data-dir", data_dir,
                             "--index", f"wordnet={index_file}", "--port", url.rsplit(":", 1)[1],
                             "--log-level", "warning"])
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"adanns serve exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("adanns serve did not start within 30 s")


def _search_each(client, queries: np.ndarray, **knobs):
    """One HTTP request per query, as a client would send them: (ids, mflops, seconds per request)."""
    ids, mflops, t0 = [], [], time.perf_counter()
    for q in queries:
        r = client.post("/indexes/wordnet/search", json={"vector": q.tolist(), "k": 10, **knobs})
        r.raise_for_status()
        body = r.json()
        ids.append(body["results"][0]["ids"])
        mflops.append(body["mflops"][0])
    return np.array(ids), float(np.mean(mflops)), (time.perf_counter() - t0) / len(queries)


def main(argv=None) -> int:
    try:
        import httpx  # noqa: F401  (the client; the server's own packages come with the same extra)
    except ImportError as e:
        raise SystemExit(f"the demo needs the 'server' extra (pip install 'adanns[server]'): {e}") from None

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="tests/data/wordnet-sample", help="folder with base.npy, queries.npy, gt.npy")
    ap.add_argument("--nlist", type=int, default=64)
    ap.add_argument("--cluster-dim", type=int, default=64)
    ap.add_argument("--keep", metavar="DIR", help="write the index file and the server's data directory into DIR "
                                                  "(created) and keep them (default: a temporary folder, deleted)")
    args = ap.parse_args(argv)

    base_path = os.path.join(args.data, "base.npy")
    base = np.load(base_path).astype(np.float32)
    queries = np.load(os.path.join(args.data, "queries.npy")).astype(np.float32)
    truth = np.load(os.path.join(args.data, "gt.npy"))[:, :10]
    n, dim = base.shape
    print(f"adanns {adanns.__version__} | SIMD level: {adanns.simd_level()} | data: {args.data}")
    print(f"base {n} x {dim}, {len(queries)} queries (WordNet glosses, all-MiniLM-L6-v2, PCA-ordered)")
    print(f"exact search: {n * dim / 1e6:.2f} MFLOPs/query (ground truth: gt.npy)\n")

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="adanns-demo-") as scratch:
        tmp = args.keep or scratch
        index_file = os.path.join(tmp, "wordnet.adanns")
        print(f"$ adanns build {base_path} -o {index_file} --nlist {args.nlist} --cluster-dim {args.cluster_dim}")
        _cli("build", base_path, "-o", index_file, "--nlist", str(args.nlist), "--cluster-dim",
             str(args.cluster_dim), "--train-size", str(n))
        print(f"$ adanns info {index_file}")
        _cli("info", index_file)

        data_dir = os.path.join(tmp, "data")
        print(f"\n$ adanns serve --data-dir {data_dir} --index wordnet={index_file}   # in the background")
        proc, url = _start_server(data_dir, index_file)
        print(f"serving on {url}")
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                info = client.get("/indexes/wordnet").json()
                print(f"GET /indexes/wordnet: {info['count']} vectors, kind {info['kind']}, "
                      f"nlist {info['params']['nlist']}, trained {info['trained']}, {info['bytes'] / 1e6:.1f} MB")

                print(f"\nPOST /indexes/wordnet/search, one request per query, k = 10:")
                print(f"{'setting':44s} {'recall@10':>9s} {'MFLOPs/q':>9s} {'ms/req':>7s}")
                for label, kw in SETTINGS:
                    ids, mflops, sec = _search_each(client, queries, **kw)
                    print(f"{label:44s} {recall_at(ids, truth):9.3f} {mflops:9.3f} {sec * 1e3:7.2f}")
                # Matryoshka prefixes: the queries themselves are only 64 coordinates long.
                for label, kw in [(f"{PREFIX}-d query prefix, nprobe 8", dict(nprobe=8)),
                                  (f"{PREFIX}-d query prefix, nprobe 16", dict(nprobe=16))]:
                    ids, mflops, sec = _search_each(client, queries[:, :PREFIX], **kw)
                    print(f"{label:44s} {recall_at(ids, truth):9.3f} {mflops:9.3f} {sec * 1e3:7.2f}")
        finally:
            proc.send_signal(signal.SIGINT)  # graceful: the server writes its snapshot and exits
            proc.wait(30)
        written = sorted(os.listdir(os.path.join(data_dir, "wordnet")))
        if args.keep:
            print(f"\nserver stopped (exit status {proc.returncode}); kept {index_file} and the data directory "
                  f"{data_dir} ({written} in wordnet/)")
        else:
            print(f"\nserver stopped (exit status {proc.returncode}); it had written {written} to {data_dir}, a "
                  "temporary folder deleted now (--keep DIR keeps the files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
