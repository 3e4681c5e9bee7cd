"""The `adanns` command: build, search, info; errors give a message and a non-zero status."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest

import adanns
from adanns.cli import main


@pytest.fixture
def base(tmp_path, rng):
    x = rng.standard_normal((500, 24)).astype(np.float16)  # float16 on disk: converted chunk by chunk
    path = tmp_path / "base.npy"
    np.save(path, x)
    return path, x.astype(np.float32)


def test_build_streams_in_chunks_and_matches_the_python_api(tmp_path, base, capsys):
    path, x = base
    out = tmp_path / "i.adanns"
    assert main(["build", str(path), "-o", str(out), "--nlist", "8", "--cluster-dim", "12", "--chunk-size", "64",
                 "--train-size", "500", "-q"]) == 0
    index = adanns.load(out)
    assert isinstance(index, adanns.IVFIndex) and len(index) == 500 and index.cluster_dim == 12
    ref = adanns.IVFIndex(24, nlist=8, cluster_dim=12, seed=0)
    ref.train(x)  # the whole set is the sample (train_size = n), so the centroids agree
    ref.add(x)
    np.testing.assert_array_equal(index.search(x[:20], k=5, nprobe=2).ids, ref.search(x[:20], k=5, nprobe=2).ids)
    assert "built IVFIndex" in capsys.readouterr().out


def test_search_writes_ids_scores_and_mflops_for_prefix_queries(tmp_path, base):
    path, x = base
    index_path, queries, out = tmp_path / "f.adanns", tmp_path / "q.npy", tmp_path / "out.npz"
    assert main(["build", str(path), "-o", str(index_path), "--kind", "flat", "-q"]) == 0
    np.save(queries, x[:30, :8])  # 8-d Matryoshka prefixes
    assert main(["search", str(index_path), str(queries), "-k", "4", "--batch-size", "7", "-o", str(out)]) == 0
    got = np.load(out)
    ref = adanns.FlatIndex(24)
    ref.add(x)
    want = ref.search(x[:30, :8], k=4)
    np.testing.assert_array_equal(got["ids"], want.ids)
    np.testing.assert_allclose(got["mflops"], want.mflops)


def test_info_describes_the_index(tmp_path, base, capsys):
    path, _ = base
    out = tmp_path / "i.adanns"
    main(["build", str(path), "-o", str(out), "--nlist", "4", "-q"])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kind       ivf" in text and "vectors    500" in text and "nlist      4" in text


@pytest.mark.parametrize("argv_tail,message", [
    (["info", "{tmp}/missing.adanns"], "no index file"),
    (["info", "{tmp}/junk.adanns"], ""),
    (["build", "{tmp}/ints.npy", "-o", "{tmp}/x.adanns"], "floating-point"),
    (["build", "{tmp}/base.npy", "-o", "{tmp}/x.adanns", "--nlist", "5000", "-q"], "nlist"),
    (["search", "{tmp}/missing.adanns", "{tmp}/base.npy"], "no index file"),
], ids=["missing index", "corrupt index", "integer base", "too few vectors", "search missing index"])
def test_errors_print_a_message_and_exit_non_zero(tmp_path, base, argv_tail, message):
    np.save(tmp_path / "ints.npy", np.ones((4, 4), np.int32))
    (tmp_path / "junk.adanns").write_bytes(b"not an index")
    argv = [a.format(tmp=tmp_path) for a in argv_tail]
    r = subprocess.run([sys.executable, "-m", "adanns.cli", *argv], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("adanns ") and "error:" in r.stderr and message in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_command_line_exits_2():
    r = subprocess.run([sys.executable, "-m", "adanns.cli", "build"], capture_output=True, text=True)
    assert r.returncode == 2 and "required" in r.stderr


def test_serve_imports_a_built_file_and_answers_like_the_python_api(tmp_path, base):
    """`adanns build` then `adanns serve --index NAME=FILE`: the served index is the built one."""
    from _server import Server

    path, x = base
    index_file = str(tmp_path / "built.adanns")
    assert main(["build", str(path), "-o", index_file, "--nlist", "8", "--cluster-dim", "16", "-q"]) == 0
    built = adanns.load(index_file)
    queries = x[:5]
    expected = built.search(queries, k=5, nprobe=4)
    server = Server(tmp_path / "data", extra_args=["--index", f"built={index_file}"]).start()
    try:
        with server.client() as client:
            info = client.get("/indexes/built").json()
            assert (info["count"], info["kind"], info["params"]["nlist"]) == (len(built), "ivf", 8)
            got = client.post("/indexes/built/search", json={"vectors": queries.tolist(), "k": 5, "nprobe": 4}).json()
            assert [r["ids"] for r in got["results"]] == expected.ids.tolist()
            # writes go on from there: an upsert of a new id is found
            client.post("/indexes/built/vectors", json={"ids": [10**9], "vectors": [queries[0].tolist()]}).raise_for_status()
            assert client.get("/indexes/built").json()["count"] == len(built) + 1
    finally:
        server.stop()


def test_serve_rejects_a_malformed_index_spec(tmp_path, capsys):
    assert main(["serve", "--data-dir", str(tmp_path), "--index", "no-equals-sign"]) == 1
    assert "NAME=FILE" in capsys.readouterr().err


@pytest.mark.parametrize("kind, extra, twin, knobs", [
    ("opq", ["--m", "4", "--pq-dim", "16", "--nbits", "4"],
     lambda: adanns.OPQIndex(24, m=4, pq_dim=16, nbits=4), {"rerank_k": 20}),
    ("ivfopq", ["--m", "4", "--pq-dim", "16", "--nbits", "4", "--nlist", "8", "--cluster-dim", "8", "--no-opq"],
     lambda: adanns.IVFOPQIndex(24, nlist=8, cluster_dim=8, m=4, pq_dim=16, nbits=4, opq=False), {"nprobe": 3}),
    ("binary", ["--bits", "16"], lambda: adanns.BinarizedIndex(24, bits=16), {"rerank_k": 20}),
])
def test_build_search_info_for_the_code_kinds(tmp_path, base, capsys, kind, extra, twin, knobs):
    path, x = base
    out, queries, res = tmp_path / f"{kind}.adanns", tmp_path / "q.npy", tmp_path / "r.npz"
    assert main(["build", str(path), "-o", str(out), "--kind", kind, "--train-size", "500", "-q", *extra]) == 0
    ref = twin()
    ref.train(x)  # train_size = n: the sample is the whole set, in order
    ref.add(x)
    np.save(queries, x[:12])
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in knobs.items()]
    assert main(["search", str(out), str(queries), "-k", "3", "-o", str(res), *flags]) == 0
    np.testing.assert_array_equal(np.load(res)["ids"], ref.search(x[:12], k=3, **knobs).ids)
    assert main(["search", str(out), str(queries), "--search-dim", "8"]) == 1
    assert "--search-dim applies to flat and IVF" in capsys.readouterr().err
    assert main(["info", str(out)]) == 0
    assert f"kind       {kind}" in capsys.readouterr().out


# ------------------------------------------------------------------------------ compute-aware search and defaults
def matryoshka(rng, n, d=32):
    scale = np.linspace(2.0, 0.2, d).astype(np.float32)  # leading coordinates matter most
    return (rng.standard_normal((n, d)) * scale).astype(np.float32)


@pytest.fixture
def ivf_file(tmp_path, rng):
    """An IVF index file built by the CLI (nlist 16), its data, and tuning / held-out query files."""
    x, q = matryoshka(rng, 2000), matryoshka(rng, 160)
    for name, a in (("base", x), ("tune", q[:80]), ("held", q[80:])):
        np.save(tmp_path / f"{name}.npy", a)
    out = tmp_path / "i.adanns"
    assert main(["build", str(tmp_path / "base.npy"), "-o", str(out), "--nlist", "16", "-q"]) == 0
    return out, x, q[:80], q[80:]


def exact_ids(x, q, k, metric="cosine"):
    xs, qs = x.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        xs, qs = xs / np.linalg.norm(xs, axis=1, keepdims=True), qs / np.linalg.norm(qs, axis=1, keepdims=True)
    return np.argsort(-(qs @ xs.T), axis=1, kind="stable")[:, :k]


def recall(ids, truth):
    return np.mean([len(np.intersect1d(a, b)) for a, b in zip(ids, truth)]) / truth.shape[1]


@pytest.mark.parametrize("nlist, nprobe", [(1, 1), (2, 2), (16, 8), (64, 16), (100, 20), (1024, 64)])
def test_default_nprobe_is_twice_the_square_root_of_nlist(nlist, nprobe):
    from adanns.cli import default_nprobe

    assert default_nprobe(nlist) == nprobe


def test_untuned_search_without_knobs_probes_the_default_lists_and_says_so(tmp_path, ivf_file, capsys):
    out, x, _, held = ivf_file
    capsys.readouterr()
    assert main(["search", str(out), str(tmp_path / "held.npy"), "-k", "10", "-o", str(tmp_path / "r.npz")]) == 0
    err = capsys.readouterr().err
    assert "nprobe 8 = ceil(2 sqrt(nlist 16))" in err and f"adanns tune {out} QUERIES.npy -k 10" in err
    got = np.load(tmp_path / "r.npz")["ids"]
    np.testing.assert_array_equal(got, adanns.load(out).search(held, k=10, nprobe=8).ids)
    assert recall(got, exact_ids(x, held, 10)) > 0.9  # min 0.95 over 30 seeds
    # other knobs without --nprobe: the same default nprobe
    assert main(["search", str(out), str(tmp_path / "held.npy"), "--search-dim", "16", "-o", str(tmp_path / "r.npz")]) == 0
    assert "no --nprobe given: using nprobe 8" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["ids"],
                                  adanns.load(out).search(held, k=10, nprobe=8, search_dim=16).ids)


def test_tune_stores_the_frontier_and_search_uses_it_for_targets_budgets_and_by_default(tmp_path, ivf_file, capsys):
    out, x, tune_q, held = ivf_file
    ref = adanns.load(out)  # the same index, tuned through the Python API
    assert main(["tune", str(out), str(tmp_path / "tune.npy"), "-k", "5", "-q"]) == 0
    printed = capsys.readouterr().out
    want = ref.tune(tune_q, k=5)
    got = adanns.load(out).frontiers()[5]  # stored in the file
    assert [(p.params, p.recall, p.mflops) for p in got.points] == [(p.params, p.recall, p.mflops) for p in want.points]
    assert f"frontier stored in {out}" in printed
    res, queries = tmp_path / "r.npz", str(tmp_path / "held.npy")
    for flags, api in [([], {"target_recall": 0.95}), (["--target-recall", "0.9"], {"target_recall": 0.9}),
                       (["--budget-mflops", "0.05"], {"budget_mflops": 0.05})]:
        assert main(["search", str(out), queries, "-k", "5", "-o", str(res), *flags]) == 0
        np.testing.assert_array_equal(np.load(res)["ids"], ref.search(held, k=5, **api).ids)
        err = capsys.readouterr().err
        assert ("default target recall@5 0.95" in err) if not flags else ("tuned setting for" in err)
    # the default really reaches about the target on unseen queries (exact neighbours by float64 numpy)
    assert main(["search", str(out), queries, "-k", "5", "-o", str(res)]) == 0
    assert recall(np.load(res)["ids"], exact_ids(x, held, 5)) >= 0.9  # min 0.93 over 30 seeds
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "tuned      k=5 (32-dim queries" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--target-recall", "0.9"], "the index is not tuned: run `adanns tune {out} QUERIES.npy -k 10`"),
    (["--budget-mflops", "1"], "the index is not tuned: run `adanns tune {out} QUERIES.npy -k 10`"),
    (["--target-recall", "0.9", "--budget-mflops", "1"], "not both"),
    (["--target-recall", "0.9", "--nprobe", "4"], "do not also give --nprobe 4"),
    (["--target-recall", "1.5"], "target_recall must be in (0, 1]"),
], ids=["target untuned", "budget untuned", "both", "with a knob", "out of range"])
def test_target_and_budget_errors_name_the_fix(tmp_path, ivf_file, capsys, flags, message):
    out = ivf_file[0]
    assert main(["search", str(out), str(tmp_path / "held.npy"), *flags]) == 1
    assert message.format(out=out) in capsys.readouterr().err


def test_a_frontier_for_another_k_or_query_length_is_not_used_silently(tmp_path, ivf_file, capsys):
    out, *_ = ivf_file
    assert main(["tune", str(out), str(tmp_path / "tune.npy"), "-k", "5", "-q"]) == 0
    assert main(["search", str(out), str(tmp_path / "held.npy"), "-k", "10", "--target-recall", "0.9"]) == 1
    assert f"tuned for k in [5], not k=10: run `adanns tune {out} QUERIES.npy -k 10`" in capsys.readouterr().err
    np.save(tmp_path / "prefix.npy", np.load(tmp_path / "held.npy")[:, :16])
    assert main(["search", str(out), str(tmp_path / "prefix.npy"), "-k", "5"]) == 0  # falls back to the default
    err = capsys.readouterr().err
    assert "tuned for k=5 with 32-dim queries, not 16-dim ones" in err and "nprobe 8" in err


def test_the_python_api_names_index_tune_when_the_index_is_not_tuned(rng):
    index = adanns.FlatIndex(8)
    index.add(matryoshka(rng, 50, 8))
    with pytest.raises(RuntimeError, match=r"call index\.tune\(queries, k=3\)"):
        index.search(matryoshka(rng, 2, 8), k=3, target_recall=0.9)


@pytest.mark.parametrize("kind, extra, knobs", [
    ("opq", ["--m", "4", "--nbits", "4"], {"rerank_k": 25}),
    ("ivfopq", ["--m", "4", "--nbits", "4", "--nlist", "8"], {"nprobe": 6, "rerank_k": 25}),
    ("binary", [], {"rerank_k": 250}),
    ("flat", [], {}),
])
def test_untuned_defaults_of_the_other_kinds(tmp_path, base, capsys, kind, extra, knobs):
    path, x = base
    out, res = tmp_path / f"{kind}.adanns", tmp_path / "r.npz"
    np.save(tmp_path / "q.npy", x[:20])
    assert main(["build", str(path), "-o", str(out), "--kind", kind, "--train-size", "500", "-q", *extra]) == 0
    assert main(["search", str(out), str(tmp_path / "q.npy"), "-k", "5", "-o", str(res)]) == 0
    assert "no knobs given" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(res)["ids"], adanns.load(out).search(x[:20], k=5, **knobs).ids)


def test_every_option_says_what_it_does_and_its_default():
    from adanns.cli import parser

    ap = parser()
    commands = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"build", "tune", "search", "info", "serve", "bench"} <= set(commands)
    for name, sub in commands.items():
        fmt = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help"
            flag = action.nargs == 0  # store_true: present or not
            if action.option_strings and not action.required and not flag:
                assert "default" in fmt._expand_help(action), f"{where}: the help does not give the default"
    search_help = commands["search"].format_help()
    assert "(default: 10)" in search_help and "ceil(2 sqrt(nlist))" in search_help


# ------------------------------------------------------------------------------ metric defaults
@pytest.mark.parametrize("kind, extra, metric", [
    ("flat", [], "cosine"), ("ivf", ["--nlist", "4"], "cosine"), ("opq", ["--m", "4", "--nbits", "4"], "ip"),
    ("ivfopq", ["--m", "4", "--nbits", "4", "--nlist", "4"], "ip"), ("binary", [], "ip"),
    ("ivf", ["--nlist", "4", "--metric", "ip"], "ip"),
])
def test_build_defaults_to_cosine_where_the_kind_supports_it(tmp_path, base, kind, extra, metric):
    path, _ = base
    out = tmp_path / "m.adanns"
    assert main(["build", str(path), "-o", str(out), "--kind", kind, "--train-size", "500", "-q", *extra]) == 0
    assert adanns.load(out).metric == metric


def test_a_prefix_query_ranks_by_cosine_on_the_prefix_by_default_and_by_raw_prefix_ip_when_asked(rng):
    """Why cosine is the default: a prefix of a unit vector is not unit-norm, and ip ranks by its length too."""
    x, q = matryoshka(rng, 300, 32), matryoshka(rng, 10, 32)[:, :8]
    by_default, by_ip = adanns.FlatIndex(32), adanns.FlatIndex(32, metric="ip")
    by_default.add(x)
    by_ip.add(x)
    assert by_default.metric == "cosine" and adanns.IVFIndex(32, nlist=4).metric == "cosine"
    assert adanns.OPQIndex(32, m=4).metric == "ip"  # PQ kinds support ip and l2 only
    np.testing.assert_array_equal(by_default.search(q, k=5).ids, exact_ids(x[:, :8], q, 5, "cosine"))
    np.testing.assert_array_equal(by_ip.search(q, k=5).ids, exact_ids(x[:, :8], q, 5, "ip"))


# ------------------------------------------------------------------------------ small fixes
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_build_on_nan_data_names_the_file_and_row(tmp_path, rng, kind):
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x[217, 3] = np.nan
    path = tmp_path / "bad base.npy"
    np.save(path, x)
    r = subprocess.run([sys.executable, "-m", "adanns.cli", "build", str(path), "-o", str(tmp_path / "x.adanns"),
                        "--kind", kind, "--nlist", "4", "--chunk-size", "100", "-q"], capture_output=True, text=True)
    assert r.returncode == 1 and f"{str(path)!r} row 217 contains NaN" in r.stderr, r.stderr
    assert not (tmp_path / "x.adanns").exists()


def test_info_says_which_byte_count_is_which(tmp_path, base, capsys):
    path, _ = base
    out = tmp_path / "i.adanns"
    main(["build", str(path), "-o", str(out), "--kind", "flat", "-q"])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["file"] == f"{out.stat().st_size} bytes on disk"
    assert lines["memory"].startswith(f"{adanns.load(out).nbytes} bytes once loaded")
    assert lines["tuned"].startswith("no (run `adanns tune")


def test_serve_with_a_missing_index_file_fails_before_creating_the_data_dir(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["serve", "--data-dir", str(data), "--index", f"wn={tmp_path}/missing.adanns"]) == 1
    err = capsys.readouterr().err
    assert "--index wn=" in err and "no index file" in err
    assert not data.exists()
    (tmp_path / "junk.adanns").write_bytes(b"not an index")
    assert main(["serve", "--data-dir", str(data), "--index", f"wn={tmp_path}/junk.adanns"]) == 1
    assert not data.exists()


@pytest.mark.parametrize("n, nlist", [(50, 1), (100, 2), (2_000, 32), (117_000, 1024), (1_000_000, 4096)])
def test_auto_nlist_is_near_four_sqrt_n_with_enough_points_per_list(n, nlist):
    from adanns.cli import auto_nlist
    assert auto_nlist(n) == nlist
    assert n // auto_nlist(n) >= 39 or nlist == 1


def test_build_without_nlist_sizes_the_lists_for_the_data(tmp_path, base, capsys):
    main(["build", str(base[0]), "-o", str(tmp_path / "x.idx"), "--kind", "ivf", "-q"])
    index = adanns.load(tmp_path / "x.idx")
    assert index.nlist == adanns.cli.auto_nlist(len(index))


def test_build_takes_the_graph_storage_and_names_the_option_in_errors(tmp_path, base, capsys):
    main(["build", str(base[0]), "-o", str(tmp_path / "g.idx"), "--kind", "graph", "--storage", "sq8", "--M", "8",
          "-q"])
    assert adanns.load(tmp_path / "g.idx").storage == "sq8"
    r = subprocess.run([sys.executable, "-m", "adanns.cli", "build", str(base[0]), "-o", str(tmp_path / "p.idx"),
                        "--kind", "opq", "--m", "7", "-q"], capture_output=True, text=True)
    assert r.returncode == 1 and "--kind opq" in r.stderr and "multiple of m" in r.stderr, r.stderr
