"""results.json and results.md: every record in the JSON; in the Markdown, per family the settings on its
recall@10-vs-MFLOPs frontier (or QPS frontier when it has no MFLOPs), the cheapest way to each recall
level, and the held-out check of compute-aware search."""

from __future__ import annotations

import json
from pathlib import Path

from . import pareto

COLUMNS = ("family", "build_name", "setting_name", "recall@1", "recall@10", "recall@100", "mflops", "qps_1t",
           "qps_all", "p50_ms", "p99_ms", "build_s", "bytes", "top1_acc", "map@10")


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int) and v >= 10000:
        return f"{v / 1e6:.1f}M"
    return str(v)


def table(columns, rows) -> list:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return out + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def families(records: list) -> list:
    return list(dict.fromkeys(r["family"] for r in records))


def family_frontier(records: list, family: str) -> list:
    rows = [r for r in records if r["family"] == family]
    if any(r["mflops"] is not None for r in rows):
        return pareto.frontier(rows, "mflops", "recall@10")
    return pareto.frontier(rows, "qps_1t", "recall@10", lower_cost_better=False)


def cheapest_at(records: list, family: str, target: float):
    """(cheapest MFLOPs row, fastest 1-thread QPS row) reaching recall@10 >= target."""
    rows = [r for r in records if r["family"] == family and r["recall@10"] >= target]
    by_cost = min((r for r in rows if r["mflops"] is not None), key=lambda r: r["mflops"], default=None)
    by_qps = max((r for r in rows if r["qps_1t"] is not None), key=lambda r: r["qps_1t"], default=None)
    return by_cost, by_qps


def write(out: Path, payload: dict) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / "results.json", out / "results.md"
    jpath.write_text(json.dumps(payload, indent=1) + "\n")
    mpath.write_text(markdown(payload) + "\n")
    return jpath, mpath


def markdown(p: dict) -> str:
    m, recs = p["machine"], p["records"]
    md = [f"# adanns bench: {p['corpus']}", "",
          f"- command: `{p['command']}` ({p['date']}, {p['elapsed_s']:.0f} s)",
          f"- data: {p['n']} base vectors x {p['dim']} dims, {p['nq']} queries, k={p['k']}, metric ip; "
          f"ground truth {p['gt_source']}",
          f"- CPU: {m['cpu_model']}, {m['logical_cpus']} logical CPUs; flags {' '.join(m['simd_flags'])}; "
          f"adanns SIMD {m['adanns_simd']}",
          f"- load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')} (a shared machine: "
          "timings are noisy, QPS is the best of repeats)",
          f"- versions: adanns {m['adanns']}, numpy {m['numpy']}, faiss {m['faiss']}, hnswlib {m['hnswlib']}",
          f"- sweep: {p['sweep']['builds']} builds, {p['sweep']['settings']} settings "
          f"({'quick' if p['quick'] else 'default'}); QPS = batch of {p['nq']} queries, 1 thread and "
          f"{p['threads']} threads; latency = single queries on 1 thread; settings timed: those on the first "
          f"{p['options']['layers']} recall-vs-MFLOPs frontier layers of each build (all when a build has <= 12)",
          ""]
    for line in p.get("skipped", []):
        md.append(f"- skipped: {line}")
    fams = families(recs)
    levels = (0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
    for key, what, pick in (("mflops", "fewest MFLOPs/query", 0), ("qps_1t", "most queries/s (1 thread, batch)", 1)):
        md += ["", f"## Frontiers compared: {what} reaching recall@10 >= level (empty: not reached)", ""]
        md += table(("recall@10 >=", *fams), [[t, *[(cheapest_at(recs, f, t)[pick] or {}).get(key) for f in fams]]
                                              for t in levels])
    md += ["", "## Cheapest setting per family at recall@10 >= 0.90 / 0.95", ""]
    rows = []
    for fam in fams:
        for t in (0.90, 0.95):
            c, q = cheapest_at(recs, fam, t)
            rows.append([fam, t, c and f"{c['build_name']} {c['setting_name']}", c and c["mflops"],
                         q and f"{q['build_name']} {q['setting_name']}", q and q["qps_1t"]])
    md += table(("family", "recall@10 >=", "cheapest in MFLOPs", "MFLOPs/q", "fastest (1 thread)", "QPS"), rows)
    held = p.get("heldout") or []
    for h in [held] if isinstance(held, dict) else held:  # a dict: results written before the PQ kinds
        md += heldout_section(h)
    md += ["", "## Frontier of each family (recall@10 vs MFLOPs/query; QPS for families without a count)", ""]
    for fam in families(recs):
        md += [f"**{fam}**", ""] + table(COLUMNS[1:], [[r[c] for c in COLUMNS[1:]] for r in
                                                       family_frontier(recs, fam)]) + [""]
    return "\n".join(md)


def heldout_section(h: dict) -> list:
    """The held-out check of one tuned build: the real tune/search path on one split, then the same choice
    replayed on many splits, then budgets."""
    family = h.get("family", "adanns IVF")
    md = ["", f"## Compute-aware search on held-out queries: {family}", "",
          f"`index.tune` on {h['tune_queries']} queries (grid of {h['grid_size']} settings, "
          f"{h['frontier_points']} kept on the frontier; the target is met when the recall's lower "
          f"bound, mean - {h['z']} sd/sqrt(n), clears it), measured on the other "
          f"{h['heldout_queries']}; build {h['build']}"
          + (f"; the whole check took {h['seconds']:.0f} s" if "seconds" in h else "")
          + ". Oracle = the cheapest grid setting reaching the target on the held-out queries.", ""]
    md += table(("target", "chosen", "held-out recall@10", "MFLOPs/q", "oracle", "oracle MFLOPs",
                 "cost ratio", "recall >= target-0.01", "cost <= 1.3x"),
                [[t["target"], json.dumps(t["chosen"]), t["heldout_recall"], t["heldout_mflops"],
                  json.dumps(t["oracle"]), t["oracle_mflops"], t["cost_ratio"], t["recall_ok"], t["cost_ok"]]
                 for t in h["targets"]])
    md += ["", f"The same choice replayed on {h['splits']} random half/half splits (per-query recall and cost "
           "measured once per grid setting on all queries):", ""]
    md += table(("target", "splits", "share recall >= target-0.01", "share cost <= 1.3x oracle",
                 "cost ratio median", "p90", "max"),
                [[r["target"], r["splits_used"], r["share_recall_ok"], r["share_cost_ok"], r["cost_ratio_median"],
                  r["cost_ratio_p90"], r["cost_ratio_max"]] for r in h["resampled"]])
    md += [""] + table(("budget MFLOPs", "chosen", "held-out recall@10", "MFLOPs/q"),
                       [[b["budget"], json.dumps(b["chosen"]), b["heldout_recall"], b["heldout_mflops"]]
                        for b in h["budgets"]])
    return md
