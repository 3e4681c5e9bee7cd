"""The sharded build (adanns.cluster.build) on the session's local Ray cluster: shard files that load and serve
on their own, results equal to a single-node index, a checksummed manifest. The sharding and merge helpers and
the manifest checks run without Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import adanns
from adanns.cluster import manifest as manifest_io
from adanns.cluster.sharding import merge_topk, shard_of


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def merged_search(folder, m, q, k, **knobs):
    parts, mflops = [], 0
    for s in range(len(m.shards)):
        res = adanns.load(m.shard_path(folder, s)).search(q, k=k, **knobs)
        parts.append((res.scores, res.ids))
        mflops = mflops + res.mflops
    scores, ids = merge_topk(parts, k, m.metric)
    return scores, ids, mflops


def recall(ids, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids.tolist(), truth.tolist())])


# ------------------------------------------------------------------------------------------- without Ray
def test_shard_of_is_deterministic_in_range_and_balanced(rng):
    ids = rng.integers(0, 2**63 - 1, size=20000, dtype=np.int64)
    for shards in (1, 3, 8):
        owner = shard_of(ids, shards)
        assert owner.dtype == np.int64 and owner.min() >= 0 and owner.max() < shards
        np.testing.assert_array_equal(owner, shard_of(ids.copy(), shards))
        counts = np.bincount(owner, minlength=shards)
        assert counts.min() > 0.9 * len(ids) / shards  # a hash, not a range split
    consecutive = shard_of(np.arange(4000), 4)
    assert np.bincount(consecutive).min() > 900  # consecutive default ids spread too


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_merge_topk_equals_the_brute_force_top_k_with_ties_to_the_smaller_id(rng, metric):
    nq, k = 6, 5
    scores = rng.integers(0, 6, size=(nq, 30)).astype(np.float32)  # many ties
    ids = rng.permutation(1000)[:30].astype(np.int64)[None, :].repeat(nq, axis=0)
    order = np.argsort(rng.random((nq, 30)), axis=1)
    scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    parts = []
    for a, b in ((0, 12), (12, 20), (20, 30)):  # three shards, each its own sorted top-k with padding
        s, i = scores[:, a:b], ids[:, a:b]
        key = np.lexsort((i, s if metric == "l2" else -s), axis=1)[:, :k]
        s, i = np.take_along_axis(s, key, 1), np.take_along_axis(i, key, 1)
        if b - a < k:
            pad = k - (b - a)
            s = np.hstack([s, np.full((nq, pad), np.inf if metric == "l2" else -np.inf, np.float32)])
            i = np.hstack([i, np.full((nq, pad), -1)])
        parts.append((s, i))
    got_s, got_i = merge_topk(parts, k, metric)
    for row in range(nq):
        pairs = sorted(zip(scores[row].tolist(), ids[row].tolist()),
                       key=lambda p: ((p[0] if metric == "l2" else -p[0]), p[1]))[:k]
        assert got_i[row].tolist() == [p[1] for p in pairs]
        assert got_s[row].tolist() == [p[0] for p in pairs]


def test_merge_topk_pads_when_the_shards_hold_fewer_than_k():
    parts = [(np.array([[0.5, -np.inf]], np.float32), np.array([[7, -1]])),
             (np.array([[0.9, -np.inf]], np.float32), np.array([[3, -1]]))]
    s, i = merge_topk(parts, 3, "ip")
    assert i.tolist() == [[3, 7, -1]] and s[0, 2] == -np.inf


def _manifest(tmp_path, rng):
    x = unit_rows(rng, 50, 8)
    idx = adanns.FlatIndex(8)
    idx.add(x)
    idx.save(tmp_path / "shard-0.adanns")
    f = tmp_path / "shard-0.adanns"
    m = manifest_io.Manifest("t", "flat", 8, "cosine", {}, "r", [manifest_io.ShardFile(
        0, "shard-0.adanns", 50, f.stat().st_size, manifest_io.file_crc32(f))], 50)
    manifest_io.write(tmp_path, m)
    return m


def test_manifest_round_trips_and_refuses_damage(tmp_path, rng):
    m = _manifest(tmp_path, rng)
    assert manifest_io.read(tmp_path) == m
    path = tmp_path / "manifest.json"
    text = path.read_text()
    path.write_text(text.replace('"rows": 50', '"rows": 51', 1))  # edited: the checksum no longer matches
    with pytest.raises(ValueError, match="checksum"):
        manifest_io.read(tmp_path)
    path.write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(ValueError, match="not a readable manifest"):
        manifest_io.read(tmp_path)
    body = json.loads(text)
    body["version"] = 99
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="version 99"):
        manifest_io.read(tmp_path)
    path.write_text(text)
    with open(tmp_path / "shard-0.adanns", "r+b") as f:  # a shard file changed after the build
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ValueError, match="shard 0"):
        manifest_io.read(tmp_path)
    with pytest.raises(ValueError, match="no manifest.json"):
        manifest_io.read(tmp_path / "nowhere")


def test_cluster_commands_without_ray_name_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from adanns.cli import main; "
            f"raise SystemExit(main(['cluster', 'build', {str(tmp_path)!r}, '-o', {str(tmp_path / 'm')!r}, "
            "'--shards', '2']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "pip install 'adanns[ray]'" in r.stderr, r.stderr
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------------------- on Ray
@pytest.mark.cluster
def test_sharded_flat_from_a_directory_of_npy_equals_single_node_exactly(ray_cluster, tmp_path, rng):
    from adanns.cluster import build

    x, q = unit_rows(rng, 1500, 24), unit_rows(rng, 40, 24)
    (tmp_path / "in").mkdir()
    for i, (a, b) in enumerate(((0, 700), (700, 1100), (1100, 1500))):
        np.save(tmp_path / "in" / f"part-{i}.npy", x[a:b])
    m = build(tmp_path / "in", tmp_path / "m", shards=3, kind="flat", metric="ip", chunk_rows=256)
    assert m.rows == 1500 and sum(s.rows for s in m.shards) == 1500 and min(s.rows for s in m.shards) > 350
    assert manifest_io.read(tmp_path / "m") == m
    held = np.concatenate([adanns.load(m.shard_path(tmp_path / "m", s)).ids() for s in range(3)])
    np.testing.assert_array_equal(np.sort(held), np.arange(1500))  # ids are input positions across files
    ref = adanns.FlatIndex(24, metric="ip")
    ref.add(x)
    for width in (24, 8):  # full and Matryoshka-prefix queries
        want = ref.search(q[:, :width], k=10)
        scores, ids, mflops = merged_search(tmp_path / "m", m, q[:, :width], 10)
        np.testing.assert_array_equal(ids, want.ids)
        np.testing.assert_array_equal(scores, want.scores)
        np.testing.assert_allclose(mflops, want.mflops)
    assert not list((tmp_path / "m").glob(".parts-*"))  # staging removed
    with pytest.raises(ValueError, match="already holds a manifest"):
        build(tmp_path / "in", tmp_path / "m", shards=2, kind="flat")


@pytest.mark.cluster
def test_sharded_ivf_from_parquet_matches_single_node_recall(ray_cluster, tmp_path, rng):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from adanns.cluster import build

    n, d = 3000, 32
    x, q = unit_rows(rng, n, d), unit_rows(rng, 60, d)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    table = pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), d), "key": ids})
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=700)
    params = {"nlist": 24, "cluster_dim": 16, "seed": 5, "train_size": n}  # the sample is then every row, in order
    m = build(tmp_path / "x.parquet", tmp_path / "m", shards=3, kind="ivf", params=params, column="emb",
              id_column="key")
    assert m.kind == "ivf" and m.params["nlist"] == 24 and m.rows == n
    ref = adanns.IVFIndex(d, nlist=24, cluster_dim=16, seed=5)
    ref.train(x)
    ref.add(x, ids)
    for s in range(3):  # every shard holds the one quantizer trained on the driver
        np.testing.assert_array_equal(adanns.load(m.shard_path(tmp_path / "m", s)).centroids, ref.centroids)
    exact = adanns.FlatIndex(d)
    exact.add(x, ids)
    truth = exact.search(q, k=10).ids
    for nprobe in (2, 6):
        single = ref.search(q, k=10, nprobe=nprobe)
        _, sharded, mflops = merged_search(tmp_path / "m", m, q, 10, nprobe=nprobe)
        assert abs(recall(sharded, truth) - recall(single.ids, truth)) <= 0.005
        np.testing.assert_array_equal(sharded, single.ids)  # same lists probed, same rows scored


@pytest.mark.cluster
def test_sharded_ivfopq_shares_codebooks_and_matches_single_node(ray_cluster, tmp_path, rng):
    """Same codebooks, so the same codes: without re-ranking the merged ADC top-k is the single-node one.
    With re-ranking each shard re-ranks its own rerank_k candidates (up to shards x rerank_k in all), a
    superset of the single node's: recall is at least the single node's."""
    from adanns.cluster import build

    n, d = 2500, 32
    x, q = unit_rows(rng, n, d), unit_rows(rng, 40, d)
    np.save(tmp_path / "x.npy", x)
    params = {"nlist": 8, "m": 8, "nbits": 4, "train_size": n, "seed": 2}
    m = build(tmp_path / "x.npy", tmp_path / "m", shards=2, kind="ivfopq", params=params)
    ref = adanns.IVFOPQIndex(d, nlist=8, m=8, nbits=4, seed=2)
    ref.train(x)
    ref.add(x)
    exact = adanns.FlatIndex(d, metric="ip")
    exact.add(x)
    truth = exact.search(q, k=10).ids
    for s in range(2):
        shard = adanns.load(m.shard_path(tmp_path / "m", s))
        np.testing.assert_array_equal(shard.centroids, ref.centroids)
    single = ref.search(q, k=10, nprobe=3)  # codes only
    scores, sharded, _ = merged_search(tmp_path / "m", m, q, 10, nprobe=3)
    assert abs(recall(sharded, truth) - recall(single.ids, truth)) <= 0.005
    np.testing.assert_allclose(scores, single.scores, rtol=1e-5, atol=1e-5)
    single = ref.search(q, k=10, nprobe=3, rerank_k=40)
    _, sharded, _ = merged_search(tmp_path / "m", m, q, 10, nprobe=3, rerank_k=40)
    assert recall(sharded, truth) >= recall(single.ids, truth) - 0.005


@pytest.mark.cluster
def test_build_refuses_bad_input_with_a_clear_message(ray_cluster, tmp_path, rng):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from adanns.cluster import build

    with pytest.raises(ValueError, match="no such file"):
        build(tmp_path / "missing.npy", tmp_path / "m", shards=2)
    np.save(tmp_path / "ints.npy", np.zeros((10, 4), np.int32))
    with pytest.raises(ValueError, match="2-D float"):
        build(tmp_path / "ints.npy", tmp_path / "m", shards=2)
    np.save(tmp_path / "x.npy", unit_rows(rng, 100, 8))
    with pytest.raises(ValueError, match="kind must be one of"):
        build(tmp_path / "x.npy", tmp_path / "m", shards=2, kind="graph")
    with pytest.raises(ValueError, match="shards must be"):
        build(tmp_path / "x.npy", tmp_path / "m", shards=0)
    with pytest.raises(ValueError, match="nlist"):
        build(tmp_path / "x.npy", tmp_path / "m", shards=2, kind="ivf", params={"nlist": 0})
    x = unit_rows(rng, 40, 8)
    table = pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 8),
                      "id": np.r_[np.arange(39), 5]})  # id 5 twice
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(ValueError, match="5"):
        build(tmp_path / "dup.parquet", tmp_path / "m2", shards=1, kind="flat", id_column="id")
    with pytest.raises(ValueError, match="no column 'vec'"):
        build(tmp_path / "dup.parquet", tmp_path / "m3", shards=2, kind="flat", column="vec")


@pytest.mark.cluster
def test_cluster_build_command_writes_a_manifest_that_serves(ray_cluster, tmp_path, rng, capsys):
    from adanns.cli import main

    np.save(tmp_path / "x.npy", unit_rows(rng, 800, 16))
    assert main(["cluster", "build", str(tmp_path / "x.npy"), "-o", str(tmp_path / "m"), "--shards", "2",
                 "--kind", "ivf", "--nlist", "8", "--name", "wn"]) == 0
    assert "built 800 rows of ivf index 'wn' into 2 shards" in capsys.readouterr().out
    m = manifest_io.read(tmp_path / "m")
    assert m.params["nlist"] == 8 and m.name == "wn" and m.rule.startswith("splitmix64")
    assert main(["cluster", "build", str(tmp_path / "x.npy"), "-o", str(tmp_path / "m2"), "--shards", "2",
                 "--kind", "flat", "--nlist", "8"]) == 1
    assert "kind flat takes no training parameters" in capsys.readouterr().err


def test_every_cluster_option_says_what_it_does_and_its_default():
    import argparse

    from adanns.cli import parser

    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    subs = next(a for a in commands["cluster"]._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subs) == {"build", "serve"}
    for name, sub in subs.items():
        fmt = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"cluster {name} {action.dest} has no help"
            if action.option_strings and not action.required and action.nargs != 0:
                assert "default" in fmt._expand_help(action), f"cluster {name} {action.dest}: no default in the help"


def test_cluster_serve_refuses_a_missing_or_damaged_manifest_before_starting_ray(tmp_path, capsys):
    pytest.importorskip("ray", reason="needs the 'ray' extra (make test installs it)")
    from adanns.cli import main

    assert main(["cluster", "serve", str(tmp_path / "nowhere")]) == 1
    assert "no manifest.json" in capsys.readouterr().err
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text('{"format": "adanns-cluster-manifest", "version": 1')
    assert main(["cluster", "serve", str(tmp_path / "m")]) == 1
    assert "not a readable manifest" in capsys.readouterr().err
    assert main(["cluster", "serve"]) == 1
    assert "give a manifest directory, or --shards N" in capsys.readouterr().err
