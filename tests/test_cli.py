"""The `adanns` command: build, search, info; errors give a message and a non-zero status."""

from __future__ import annotations

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
