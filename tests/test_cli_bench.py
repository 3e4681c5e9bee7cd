"""`adanns bench` end to end on a tiny corpus (adanns families only: tests must not need faiss/hnswlib)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from adanns.cli import main


@pytest.fixture
def corpus(tmp_path, rng):
    scale = np.linspace(2.0, 0.2, 24).astype(np.float32)
    files = {"base": (rng.standard_normal((2000, 24)) * scale).astype(np.float16),
             "queries": (rng.standard_normal((60, 24)) * scale).astype(np.float32),
             "lb": rng.integers(0, 4, 2000).astype(np.int32), "lq": rng.integers(0, 4, 60).astype(np.int32)}
    paths = {}
    for name, arr in files.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], arr)
    return paths


def args(c, out, *extra):
    return ["bench", "--base", str(c["base"]), "--queries", str(c["queries"]), "--out", str(out), "--quick", "-q",
            *extra]


def test_bench_writes_results_with_every_metric_and_caches_the_ground_truth(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(args(corpus, out, "--peers", "none", "--no-plots", "--labels-base", str(corpus["lb"]),
                     "--labels-queries", str(corpus["lq"]))) == 0
    printed = capsys.readouterr().out
    assert "sweep: 5 builds" in printed  # the size is announced before the sweep starts
    res = json.loads((out / "results.json").read_text())
    assert {r["family"] for r in res["records"]} == {"adanns Flat", "adanns IVF", "adanns OPQ", "adanns IVFOPQ",
                                                     "adanns binary"}
    full = [r for r in res["records"] if r["family"] == "adanns Flat" and r["setting"] == {"search_dim": 24}][0]
    assert full["recall@1"] == full["recall@10"] == full["recall@100"] == 1.0  # exact search vs exact truth
    assert full["mflops"] == pytest.approx(2000 * 24 / 1e6)
    assert full["timed"] and full["qps_1t"] > 0 and full["p99_ms"] >= full["p50_ms"] > 0
    assert 0 <= full["top1_acc"] <= 1 and 0 <= full["map@10"] <= 1
    # The held-out check of compute-aware search runs for every tunable kind that was built, IVF first.
    assert [h["family"] for h in res["heldout"]] == ["adanns IVF", "adanns IVFOPQ", "adanns OPQ"]
    assert all(h["targets"][0]["target"] == 0.9 for h in res["heldout"])
    md = (out / "results.md").read_text()
    assert "## Frontier of each family" in md and "## Compute-aware search on held-out queries: adanns IVFOPQ" in md
    assert (out / "gt_top100.npy").exists()
    assert main(args(corpus, out, "--peers", "none", "--no-plots", "--families", "flat", "--no-tune-check")) == 0
    assert json.loads((out / "results.json").read_text())["gt_source"].startswith("cached")


def test_missing_peers_are_skipped_with_a_message(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    monkeypatch.setitem(sys.modules, "hnswlib", None)
    assert main(args(corpus, tmp_path / "o", "--families", "flat", "--no-plots", "--no-tune-check")) == 0
    err = capsys.readouterr().err
    assert "skipping faiss IVFFlat: faiss is not installed" in err and "skipping hnswlib HNSW" in err


def test_plots_without_matplotlib_fail_before_the_sweep(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(args(corpus, tmp_path / "o", "--peers", "none")) == 1
    assert "--no-plots" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_plots_are_written_when_matplotlib_is_there(corpus, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "o"
    assert main(args(corpus, out, "--peers", "none", "--families", "flat", "--no-tune-check")) == 0
    for name in ("recall_vs_mflops.png", "recall_vs_qps.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("change, message", [
    ({"queries_dim": 12}, "queries have 12 dims"),
    ({"peers": "faiss,annoy"}, "unknown peers ['annoy']"),
    ({"gt_cols": 5}, "gt"),
    ({"labels_only_base": True}, "both --labels-base and --labels-queries"),
])
def test_bad_input_exits_1_with_a_precise_message(corpus, tmp_path, rng, capsys, change, message):
    extra = ["--no-plots", "--peers", change.get("peers", "none")]
    if "queries_dim" in change:
        np.save(corpus["queries"], rng.standard_normal((5, change["queries_dim"])).astype(np.float32))
    if "gt_cols" in change:
        np.save(tmp_path / "gt.npy", np.zeros((60, change["gt_cols"]), np.int64))
        extra += ["--gt", str(tmp_path / "gt.npy")]
    if change.get("labels_only_base"):
        extra += ["--labels-base", str(corpus["lb"])]
    assert main(args(corpus, tmp_path / "o", *extra)) == 1
    assert message in capsys.readouterr().err


def test_bench_sweeps_the_graph_family(corpus, tmp_path):
    out = tmp_path / "g"
    assert main(args(corpus, out, "--peers", "none", "--no-plots", "--families", "graph")) == 0
    res = json.loads((out / "results.json").read_text())
    graph = [r for r in res["records"] if r["family"] == "adanns graph"]
    assert {r["build"]["storage"] for r in graph} == {"sq8", "float32"}
    best = max(r["recall@10"] for r in graph)
    assert best >= 0.95, best  # a wide beam re-ranked with the full vectors finds the true neighbours
    assert all(r["mflops"] > 0 for r in graph)
    assert [h["family"] for h in res["heldout"]] == ["adanns graph"]
