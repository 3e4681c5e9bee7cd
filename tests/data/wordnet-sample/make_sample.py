#!/usr/bin/env python3
"""Cut the small wordnet-minilm sample shipped in tests/data/wordnet-sample/.

Not run by the tests or the demo; kept for provenance. Usage (from the repo root):

    python tests/data/wordnet-sample/make_sample.py ../shared/data/wordnet-minilm [OUT_DIR]

SRC is the full corpus directory (see its README); OUT_DIR defaults to this script's folder.
Needs only numpy.
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np

SEED = 2026          # np.random.default_rng(SEED) picks the base rows
N_BASE = 5000        # base rows in the sample
N_QUERIES = 200      # the first N_QUERIES rows of queries.npy
K_GT = 100           # ground-truth depth
TEXT_BUDGET = 1_500_000  # bytes for both id/text files; above it, texts are cut to 80 chars
PREFIXES = (16, 32, 64, 128, 192, 384)


def topk_ip(q, x, k):
    """Exact top-k by inner product (float64), ties broken by smaller row index."""
    s = q.astype(np.float64) @ x.astype(np.float64).T
    out = np.empty((len(q), k), dtype=np.int32)
    idx = np.arange(x.shape[0])
    for i in range(len(q)):
        order = np.lexsort((idx, -s[i]))  # primary: score desc; secondary: index asc
        out[i] = order[:k]
    return out


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t", 1) for line in f]


def write_tsv(path, rows, maxlen=None):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for sid, text in rows:
            f.write(f"{sid}\t{text if maxlen is None else text[:maxlen]}\n")


def recall_table(base, queries, gt, k=10):
    """recall@k vs gt[:, :k] of exact search on the first m coordinates (ip, cos, rr100)."""
    b32, q32 = base.astype(np.float32), queries.astype(np.float32)
    truth = [set(r) for r in gt[:, :k]]
    rows = []
    for m in PREFIXES:
        bp, qp = b32[:, :m], q32[:, :m]
        ip = topk_ip(qp, bp, 100)
        bn = bp / np.maximum(np.linalg.norm(bp, axis=1, keepdims=True), 1e-30)
        qn = qp / np.maximum(np.linalg.norm(qp, axis=1, keepdims=True), 1e-30)
        cos = topk_ip(qn, bn, k)
        rr = []
        for i in range(len(q32)):
            cand = ip[i]
            s = b32[cand].astype(np.float64) @ q32[i].astype(np.float64)
            rr.append(cand[np.lexsort((cand, -s))][:k])
        rec = lambda res: float(np.mean([len(truth[i] & set(res[i][:k])) / k for i in range(len(truth))]))
        rows.append((m, rec(ip), rec(cos), rec(rr)))
    return rows


def main():
    src = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)

    base_all = np.load(src / "base.npy", mmap_mode="r")
    q_all = np.load(src / "queries.npy", mmap_mode="r")
    rng = np.random.default_rng(SEED)
    sel = np.sort(rng.choice(base_all.shape[0], size=N_BASE, replace=False))

    base = np.ascontiguousarray(base_all[sel]).astype(np.float16)
    queries = np.ascontiguousarray(q_all[:N_QUERIES]).astype(np.float16)
    np.save(out / "base.npy", base)
    np.save(out / "queries.npy", queries)
    np.save(out / "labels_base.npy", np.load(src / "labels_base.npy")[sel].astype(np.int32))
    np.save(out / "labels_queries.npy", np.load(src / "labels_queries.npy")[:N_QUERIES].astype(np.int32))
    np.save(out / "source_rows_base.npy", sel.astype(np.int32))
    shutil.copyfile(src / "label_names.json", out / "label_names.json")
    shutil.copyfile(src / "WORDNET-LICENSE", out / "WORDNET-LICENSE")

    bt = read_tsv(src / "base_texts.tsv")
    qt = read_tsv(src / "queries_texts.tsv")
    assert len(bt) == base_all.shape[0] and len(qt) == q_all.shape[0]
    bt = [bt[i] for i in sel]
    qt = qt[:N_QUERIES]
    full = sum(len(f"{a}\t{b}\n".encode()) for a, b in bt + qt)
    maxlen = None if full <= TEXT_BUDGET else 80
    write_tsv(out / "base_ids.tsv", bt, maxlen)
    write_tsv(out / "queries_ids.tsv", qt, maxlen)

    gt = topk_ip(queries.astype(np.float32), base.astype(np.float32), K_GT)
    np.save(out / "gt.npy", gt)

    print(f"seed={SEED} base={base.shape} queries={queries.shape} text_maxlen={maxlen}")
    print("| m | ip | cos | rr100 |")
    print("|---|---|---|---|")
    for m, a, b, c in recall_table(base, queries, gt):
        print(f"| {m} | {a:.3f} | {b:.3f} | {c:.3f} |")


if __name__ == "__main__":
    main()
