"""The default metric of a new index is cosine where the kind supports it (flat, ivf) and ip for the kinds
that do not (opq, ivfopq, binary), in the Python API, the CLI (test_cli.py) and the REST service; an
explicit metric is kept."""

from __future__ import annotations

import adanns

from _server import Server


def test_python_api_defaults():
    assert adanns.FlatIndex(8).metric == "cosine"
    assert adanns.IVFIndex(8, nlist=2).metric == "cosine"
    assert adanns.OPQIndex(8, m=2).metric == "ip" and adanns.IVFOPQIndex(8, nlist=2, m=2).metric == "ip"
    assert adanns.BinarizedIndex(8).metric == "ip"
    assert adanns.IVFIndex(8, nlist=2, metric="ip").metric == "ip"


def test_rest_create_without_a_metric_gets_the_kinds_default_and_a_given_one_is_kept(tmp_path):
    want = {"flat": "cosine", "ivf": "cosine", "opq": "ip", "ivfopq": "ip", "binary": "ip"}
    params = {"opq": {"m": 4}, "ivfopq": {"m": 4, "nlist": 4}, "ivf": {"nlist": 4}}
    with Server(tmp_path / "data") as s, s.client() as c:
        for kind, metric in want.items():
            r = c.put(f"/indexes/{kind}", json={"dim": 16, "kind": kind, "params": params.get(kind, {})})
            assert r.status_code == 201 and r.json()["metric"] == metric, r.text
        r = c.put("/indexes/default-kind", json={"dim": 16})
        assert r.status_code == 201 and (r.json()["kind"], r.json()["metric"]) == ("ivf", "cosine")
        r = c.put("/indexes/asked", json={"dim": 16, "kind": "ivf", "metric": "ip", "params": {"nlist": 4}})
        assert r.status_code == 201 and r.json()["metric"] == "ip"
