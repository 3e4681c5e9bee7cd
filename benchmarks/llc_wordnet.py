"""Do learnt binary codes (LLC) carry the labels better than sign codes of equal length? (wordnet-minilm)

For 16 and 32 bits: LLC (adanns.codes.LLC, nested prefixes) against ``binarize`` (sign of the first b
PCA coordinates, mean-centred; and with an ITQ rotation), on the 45 WordNet lexicographer classes:

  * precision@10 of label agreement for Hamming retrieval (1,000 queries against the 116,659 base codes,
    BinaryIndex top-10, ties to the smaller id);
  * minimum-Hamming classification accuracy of the queries (LLC: its class codebook; binarize: class
    codes by per-bit majority of the base codes);
  * exact-decoding accuracy (the query code equals its class code) and the share of queries no class
    owns; a float linear probe (softmax regression on all 384 coordinates) for reference;
  * OOD: LLC trained with 5 classes held out (seeded choice); the share of held-out items (their base and
    query rows) flagged OOD by exact decoding, and of in-distribution queries falsely flagged.

Targets: LLC beats binarize at equal length in (a) P@10 and (b) min-Hamming accuracy.
Run from the repository root:  .venv/bin/python benchmarks/llc_wordnet.py
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins BLAS/OpenMP to one thread before numpy loads)

import argparse
import json
import time
from pathlib import Path

import numpy as np

import adanns
from adanns.codes import LLC, Binarizer, CodeClassifier

from _common import add_data_arg, print_table, write_results


def load(path):
    p = Path(path)
    f = lambda n: np.ascontiguousarray(np.load(p / n).astype(np.float32))  # noqa: E731
    names = json.loads((p / "label_names.json").read_text()) if (p / "label_names.json").exists() else None
    return (f("base.npy"), f("queries.npy"), np.load(p / "labels_base.npy").astype(np.int64),
            np.load(p / "labels_queries.npy").astype(np.int64), names)


def precision_at_10(q_codes, b_codes, nbits, yb, yq, bits=None):
    index = adanns.BinaryIndex(nbits, codes=b_codes)
    ids = index.search(q_codes, 10, search_bits=bits, threads=1).ids
    return float((yb[ids] == yq[:, None]).mean())


def linear_probe(xb, yb, xq, yq, seed=0, epochs=10, lr=2e-3, batch=512):
    """Softmax regression on standardised full vectors, mini-batch Adam (the float reference)."""
    rng = np.random.default_rng(seed)
    mu, sd = xb.mean(0), xb.std(0) + 1e-6
    xs, xt = (xb - mu) / sd, (xq - mu) / sd
    L = int(yb.max()) + 1
    W, b = np.zeros((xb.shape[1], L), np.float32), np.zeros(L, np.float32)
    m = [np.zeros_like(W), np.zeros_like(b)]
    v = [np.zeros_like(W), np.zeros_like(b)]
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(xs))
        for s in range(0, len(xs), batch):
            i = order[s:s + batch]
            z = xs[i] @ W + b
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(i)), yb[i]] -= 1
            p /= len(i)
            t += 1
            for j, g in enumerate((xs[i].T @ p + 1e-4 * W, p.sum(0))):
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                step = lr * (m[j] / (1 - 0.9 ** t)) / (np.sqrt(v[j] / (1 - 0.999 ** t)) + 1e-8)
                if j == 0:
                    W -= step
                else:
                    b -= step
    return float(((xt @ W + b).argmax(1) == yq).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arg(p)
    p.add_argument("--bits", default="16,32")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, default=5)
    args = p.parse_args()
    xb, xq, yb, yq, names = load(args.data)
    L = int(yb.max()) + 1
    bits_list = [int(b) for b in args.bits.split(",")]
    rows, results, summary = [], {}, []

    t0 = time.perf_counter()
    probe = linear_probe(xb, yb, xq, yq, seed=args.seed)
    print(f"float linear probe (384-d): {probe:.3f} ({time.perf_counter() - t0:.1f} s)", flush=True)

    for nbits in bits_list:
        nested = [b for b in (8, 16, 32) if b < nbits]
        t0 = time.perf_counter()
        llc = LLC(nbits, nested=nested, epochs=args.epochs, code_epochs=args.epochs, seed=args.seed).fit(xb, yb)
        fit_s = time.perf_counter() - t0
        cb, cq = llc.encode(xb), llc.encode(xq)
        clf = llc.classifier()
        r = {"fit_s": fit_s, "p@10": precision_at_10(cq, cb, nbits, yb, yq),
             "min_hamming_acc": float((clf.predict_min_hamming(cq) == yq).mean()),
             "exact_acc": float((clf.predict_exact(cq) == yq).mean()),
             "no_owner": float(clf.is_ood(cq).mean()), "train_exact": llc.train_exact_accuracy_,
             "distinct_class_codes": L - clf.duplicate_codes}
        results[f"llc{nbits}"] = r
        rows.append([f"LLC {nbits}", nbits, r["p@10"], r["min_hamming_acc"], r["exact_acc"], r["no_owner"],
                     round(fit_s, 1)])
        print(f"LLC {nbits}: {r}", flush=True)
        for pb in nested:  # nested prefixes of the same codes
            pclf = llc.classifier(bits=pb)
            rp = {"p@10": precision_at_10(cq, cb, nbits, yb, yq, bits=pb),
                  "min_hamming_acc": float((pclf.predict_min_hamming(cq[:, :pb // 8]) == yq).mean()),
                  "exact_acc": float((pclf.predict_exact(cq[:, :pb // 8]) == yq).mean())}
            rp["no_owner"] = float((pclf.predict_exact(cq[:, :pb // 8]) < 0).mean())
            results[f"llc{nbits}_prefix{pb}"] = rp
            rows.append([f"LLC {nbits}, first {pb} bits", pb, rp["p@10"], rp["min_hamming_acc"], rp["exact_acc"],
                         rp["no_owner"], ""])
        for rot in (None, "itq"):
            t0 = time.perf_counter()
            bz = Binarizer(nbits, rotation=rot, seed=args.seed).fit(xb)
            bb, bq = bz.encode(xb), bz.encode(xq)
            fit_s = time.perf_counter() - t0
            bclf = CodeClassifier.from_codes(bb, yb)
            rb = {"p@10": precision_at_10(bq, bb, nbits, yb, yq),
                  "min_hamming_acc": float((bclf.predict_min_hamming(bq) == yq).mean()),
                  "exact_acc": float((bclf.predict_exact(bq) == yq).mean()), "no_owner": float(bclf.is_ood(bq).mean())}
            name = f"binarize {nbits}" + (" + ITQ" if rot else "")
            results[name] = rb
            rows.append([name, nbits, rb["p@10"], rb["min_hamming_acc"], rb["exact_acc"], rb["no_owner"],
                         round(fit_s, 1)])
            print(f"{name}: {rb}", flush=True)
        best = max(results[f"binarize {nbits}"]["p@10"], results[f"binarize {nbits} + ITQ"]["p@10"])
        best_acc = max(results[f"binarize {nbits}"]["min_hamming_acc"],
                       results[f"binarize {nbits} + ITQ"]["min_hamming_acc"])
        ok = r["p@10"] > best and r["min_hamming_acc"] > best_acc
        summary.append(f"{nbits} bits: LLC P@10 {r['p@10']:.3f} vs best binarize {best:.3f}; min-Hamming accuracy "
                       f"{r['min_hamming_acc']:.3f} vs {best_acc:.3f} -> {'met' if ok else 'NOT met'}")
    rows.append(["float linear probe (384 floats)", 384 * 32, "", probe, "", "", ""])

    # OOD: hold out classes, train on the rest, decode exactly.
    rng = np.random.default_rng(args.seed)
    held = np.sort(rng.choice(L, args.holdout, replace=False))
    in_b, in_q = ~np.isin(yb, held), ~np.isin(yq, held)
    ood_rows = []
    for nbits in bits_list:
        nested = [b for b in (8, 16, 32) if b < nbits]
        llc = LLC(nbits, nested=nested, epochs=args.epochs, code_epochs=args.epochs, seed=args.seed)
        llc.fit(xb[in_b], yb[in_b])
        clf = llc.classifier()
        held_codes = np.concatenate([llc.encode(xb[~in_b]), llc.encode(xq[~in_q])])
        flagged_held = float(clf.is_ood(held_codes).mean())
        flagged_in = float(clf.is_ood(llc.encode(xq[in_q])).mean())
        acc_in = float((clf.predict_exact(llc.encode(xq[in_q])) == yq[in_q]).mean())
        flagged_held_r1 = float(clf.is_ood(held_codes, radius=1).mean())
        flagged_in_r1 = float(clf.is_ood(llc.encode(xq[in_q]), radius=1).mean())
        results[f"ood{nbits}"] = {"held_out_classes": held.tolist(), "held_out_items": int(len(held_codes)),
                                  "in_distribution_queries": int(in_q.sum()), "held_flagged": flagged_held,
                                  "in_flagged": flagged_in, "in_exact_acc": acc_in,
                                  "held_flagged_radius1": flagged_held_r1, "in_flagged_radius1": flagged_in_r1}
        ood_rows.append([nbits, len(held_codes), flagged_held, flagged_in, acc_in, flagged_held_r1, flagged_in_r1])
        print(f"OOD {nbits}: {results[f'ood{nbits}']}", flush=True)

    cols = ["codes", "bits compared", "P@10 label agreement", "min-Hamming accuracy", "exact-decoding accuracy",
            "share with no owning class", "fit s"]
    title = (f"wordnet-minilm, {L} classes: 1,000 queries vs {len(xb):,} base codes; LLC epochs "
             f"{args.epochs}+{args.epochs}, seed {args.seed}, 1 thread")
    print_table(title, cols, rows)
    hname = [names[i] for i in held] if names else held.tolist()
    ocols = ["bits", "held-out items", "held-out flagged OOD", "in-distribution falsely flagged",
             "in-distribution exact accuracy", "held-out flagged (radius 1)", "in-dist. flagged (radius 1)"]
    otitle = f"OOD by exact decoding: LLC trained without {args.holdout} classes ({', '.join(map(str, hname))})"
    print_table(otitle, ocols, ood_rows)
    summary.append(f"float linear probe on 384 coordinates: accuracy {probe:.3f}")
    write_results("llc_wordnet", {"llc": {"results": results, "summary": summary,
                                          "tables": [{"title": title, "columns": cols, "rows": rows},
                                                     {"title": otitle, "columns": ocols, "rows": ood_rows}]}})


if __name__ == "__main__":
    main()
