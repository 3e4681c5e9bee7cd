"""PNG plots: recall@10 against MFLOPs/query and against 1-thread QPS, log x-axis, one colour per family,
each family's Pareto frontier drawn (peers dashed). matplotlib is imported here only (a bench extra)."""

from __future__ import annotations

from pathlib import Path

from . import pareto


def require() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("plots need matplotlib (pip install 'adanns[bench]'), or pass --no-plots") from None


def draw(records: list, out: Path, title: str) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(dict.fromkeys(r["family"] for r in records))
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(fams)}
    paths = []
    for key, xlabel, better_low, name in (("mflops", "MFLOPs / query (log)", True, "recall_vs_mflops.png"),
                                          ("qps_1t", "queries / second, 1 thread, batch (log)", False,
                                           "recall_vs_qps.png")):
        fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
        for f in fams:
            rows = [r for r in records if r["family"] == f and r.get(key) is not None]
            if not rows:
                continue
            peer = rows[0]["peer"]
            ax.scatter([r[key] for r in rows], [r["recall@10"] for r in rows], s=10, alpha=0.3, color=colours[f])
            front = pareto.frontier(rows, key, "recall@10", lower_cost_better=better_low)
            ax.plot([r[key] for r in front], [r["recall@10"] for r in front], "--" if peer else "-",
                    color=colours[f], marker="o", markersize=3, linewidth=1.6, label=f + (" (peer)" if peer else ""))
        ax.set_xscale("log")
        top = max((r["recall@10"] for r in records), default=1.0)
        ax.set_ylim(0.4 if top > 0.7 else 0.0, 1.005)  # the interesting part: high recall
        ax.set_xlabel(xlabel)
        ax.set_ylabel("recall@10")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0.9, color="grey", linewidth=0.5)
        ax.axhline(0.95, color="grey", linewidth=0.5)
        ax.legend(loc="lower right" if better_low else "lower left", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        paths.append(out / name)
    return paths
