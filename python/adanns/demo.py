"""`make demo`: build an AdANNS-IVF index from the WordNet sample shipped in the repository, search it
with several per-query settings, and print recall@10 against exact search and the MFLOPs spent.

    python -m adanns.demo --data tests/data/wordnet-sample
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import adanns

# (label, search keyword arguments): one built index, knobs chosen per search.
SETTINGS = [
    ("rigid: d_s 384, nprobe 8", dict(nprobe=8, search_dim=384)),
    ("d_s 64, nprobe 8", dict(nprobe=8, search_dim=64)),
    ("d_s 64, nprobe 8, re-rank 50 @384", dict(nprobe=8, search_dim=64, rerank_dim=384, rerank_k=50)),
    ("d_s 128, nprobe 8, re-rank 50 @384", dict(nprobe=8, search_dim=128, rerank_dim=384, rerank_k=50)),
    ("d_s 64, nprobe 16, re-rank 100 @384", dict(nprobe=16, search_dim=64, rerank_dim=384, rerank_k=100)),
    ("d_s 32, nprobe 4, re-rank 100 @192", dict(nprobe=4, search_dim=32, rerank_dim=192, rerank_k=100)),
]


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    hits = [len(np.intersect1d(f[:k], t[:k])) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="tests/data/wordnet-sample", help="folder with base.npy and queries.npy")
    ap.add_argument("--nlist", type=int, default=64)
    ap.add_argument("--cluster-dim", type=int, default=64)
    args = ap.parse_args(argv)

    base = np.load(os.path.join(args.data, "base.npy")).astype(np.float32)
    queries = np.load(os.path.join(args.data, "queries.npy")).astype(np.float32)
    n, dim = base.shape
    print(f"adanns {adanns.__version__} | SIMD level: {adanns.simd_level()} | data: {args.data}")
    print(f"base {n} x {dim}, {len(queries)} queries (WordNet glosses, all-MiniLM-L6-v2, PCA-ordered)")

    exact = adanns.FlatIndex(dim, metric="ip")
    exact.add(base)
    truth = exact.search(queries, k=10)
    print(f"exact search: {truth.mflops.mean():.2f} MFLOPs/query")

    t0 = time.perf_counter()
    index = adanns.IVFIndex(dim, nlist=args.nlist, metric="ip", cluster_dim=args.cluster_dim, seed=0)
    index.train(base)
    index.add(base)
    print(f"built IVF: nlist {index.nlist}, clustered on the first {index.cluster_dim} coordinates, "
          f"{len(index)} vectors, {time.perf_counter() - t0:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wordnet.adanns")
        index.save(path)
        index = adanns.load(path, mmap=True)  # the vectors stay on disk, mapped
        print(f"saved and reloaded (mmap): {os.path.getsize(path) / 1e6:.1f} MB")

        print(f"\n{'setting':40s} {'recall@10':>9s} {'MFLOPs/q':>9s} {'QPS':>8s}")
        for label, kw in SETTINGS:
            t = time.perf_counter()
            res = index.search(queries, k=10, **kw)
            qps = len(queries) / (time.perf_counter() - t)
            print(f"{label:40s} {recall_at(res.ids, truth.ids):9.3f} {res.mflops.mean():9.3f} {qps:8.0f}")

        # A Matryoshka prefix: the query itself is only 64 coordinates long.
        res = index.search(queries[:, :64], k=10, nprobe=8)
        print(f"{'64-d query prefix, nprobe 8':40s} {recall_at(res.ids, truth.ids):9.3f} {res.mflops.mean():9.3f}")
        del index
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
