"""Bounded work per request, auth as documented, and the small holes: each request that used to demand
huge work, slip past the key or answer 5xx gets a clear 4xx now."""

from __future__ import annotations

import io
import socket
import struct
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

import adanns

from _server import Server

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("limits") / "data"
    with Server(data, api_key=KEY, extra_args=["--body-timeout", "1.5", "--max-body-mb", "1"]) as s:
        with s.client() as c:
            assert c.put("/indexes/lim", json={"dim": 8, "kind": "flat"}).status_code == 201
            x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
            assert c.post("/indexes/lim/vectors", json={"ids": list(range(50)), "vectors": x.tolist()}).status_code == 200
        yield s


@pytest.fixture
def http(server):
    with server.client() as c:
        yield c


def test_a_small_request_cannot_ask_for_a_huge_response(http):
    t0 = time.monotonic()
    r = http.post("/indexes/lim/search", json={"vectors": [[0.1]] * 1000, "k": 10000})
    assert r.status_code == 422 and "limit is 100000" in r.json()["detail"]
    assert time.monotonic() - t0 < 2
    r = http.post("/indexes/lim/search", json={"vectors": [[0.1]] * 10001, "k": 1})
    assert r.status_code == 413 and "10001 queries" in r.json()["detail"]


def test_npy_header_shape_is_checked_against_the_body_before_allocating(http):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 8), }"
    header += " " * (63 - len(header) % 64) + "\n"
    body = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64
    r = http.post("/indexes/lim/vectors?ids=1", content=body, headers={"content-type": "application/x-npy"})
    assert r.status_code == 422 and "declares shape (1099511627776, 8)" in r.json()["detail"], r.text
    buf = io.BytesIO()
    np.save(buf, np.array([[1, 2]], dtype=object), allow_pickle=True)
    r = http.post("/indexes/lim/vectors?ids=1", content=buf.getvalue(), headers={"content-type": "application/x-npy"})
    assert r.status_code == 422


@pytest.mark.parametrize("params", [{"nlist": 30_000_000}, {"nlist": 2**31}, {"train_size": 2**40},
                                    {"niter": 10**9}, {"seed": 2**64}])
def test_index_parameters_are_bounded_before_anything_is_built(http, params):
    r = http.put("/indexes/huge", json={"dim": 8, "kind": "ivf", "params": params})
    assert r.status_code == 422 and "must be <=" in r.json()["detail"], r.text


def test_concurrent_create_and_delete_of_one_name_never_answer_5xx(server):
    statuses = []

    def worker(i):
        with server.client() as c:
            for _ in range(6):
                if i % 2:
                    statuses.append(c.delete("/indexes/racy").status_code)
                else:
                    statuses.append(c.put("/indexes/racy", json={"dim": 4, "kind": "flat"}).status_code)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 201, 204, 404}, statuses


def test_every_route_but_healthz_needs_the_key_and_it_is_checked_before_the_body(server):
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        assert anon.get("/healthz").status_code == 200
        for path in ("/docs", "/redoc", "/openapi.json", "/metrics", "/indexes", "/indexes/lim"):
            assert anon.get(path).status_code == 401, path
        # A body that would not parse: still 401, not 422.
        r = anon.post("/indexes/lim/vectors", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = anon.post("/indexes/lim/search", content=b"{not json")
        assert r.status_code == 401
        # Two Authorization headers, even if one is right: one rule on every route.
        two = [("authorization", f"Bearer {KEY}"), ("authorization", "Bearer nope")]
        for method, path, body in [("GET", "/indexes", None), ("POST", "/indexes/lim/search", b'{"vector":[1],"k":1}'),
                                   ("GET", "/openapi.json", None)]:
            r = anon.request(method, path, content=body, headers=two)
            assert r.status_code == 401 and "exactly one" in r.json()["detail"], (path, r.text)
    with server.client() as c:
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200


def test_public_docs_flag(tmp_path):
    with Server(tmp_path / "d", api_key=KEY, extra_args=["--public-docs"]) as s, \
            httpx.Client(base_url=s.url, timeout=10) as anon:
        assert anon.get("/openapi.json").status_code == 200
        assert anon.get("/indexes").status_code == 401


@pytest.mark.parametrize("how", [["--api-key", ""], ["--api-key", "   "]])
def test_an_empty_api_key_is_a_startup_error(tmp_path, how):
    r = subprocess.run([sys.executable, "-m", "adanns.cli", "serve", "--data-dir", str(tmp_path / "d"), *how],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "API key is empty" in r.stderr


def test_a_streamed_body_over_the_limit_is_413_on_every_route(http):
    def chunks():
        for _ in range(40):
            yield b"[" * (64 << 10)

    for method, path in [("POST", "/indexes/lim/vectors"), ("POST", "/indexes/lim/search"),
                         ("PUT", "/indexes/other"), ("DELETE", "/indexes/lim/vectors"), ("POST", "/indexes/lim/tune")]:
        try:
            r = http.request(method, path, content=chunks(), headers={"content-type": "application/json"})
        except httpx.TransportError:
            continue  # the server may close before the client has sent everything
        assert r.status_code == 413, (path, r.status_code, r.text)


def test_a_slow_body_times_out_with_408(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST /indexes/lim/search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
                  "content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"vec".encode())
        t0 = time.monotonic()
        reply = b""
        while b"within" not in reply:  # headers and body may come in separate segments
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
        assert reply.startswith("HTTP/1.1 408") and "not received within 1.5 s" in reply, reply
        assert time.monotonic() - t0 < 5


def test_vectors_whose_scores_would_overflow_float32_are_refused(http):
    big = [[1e20] + [0.0] * 7]
    r = http.post("/indexes/lim/vectors", json={"ids": [900], "vectors": big})
    assert r.status_code == 422 and "overflow float32" in r.json()["detail"]
    r = http.post("/indexes/lim/search", json={"vector": big[0], "k": 1})
    assert r.status_code == 422 and "overflow float32" in r.json()["detail"]
    # Just inside the bound: every score comes back as a number.
    ok = [[3.0e18] + [0.0] * 7]
    assert http.post("/indexes/lim/vectors", json={"ids": [901], "vectors": ok}).status_code == 200
    r = http.post("/indexes/lim/search", json={"vector": ok[0], "k": 3})
    assert r.status_code == 200 and all(s is not None for s in r.json()["results"][0]["scores"])


def test_default_ids_refuse_to_pass_the_int64_range():
    for make in (lambda: adanns.FlatIndex(4), lambda: adanns.BinaryIndex(64)):
        index = make()
        x = np.ones((1, 4), np.float32) if isinstance(index, adanns.FlatIndex) else np.zeros((1, 8), np.uint8)
        index.add(x, np.array([2**63 - 1]))
        with pytest.raises(ValueError, match="2\\^63 ?- ?1"):
            index.add(x)
        assert len(index) == 1
        index2 = make()
        index2.add(x, np.array([2**63 - 3]))
        index2.add(x)  # 2^63 - 2: still fits
        with pytest.raises(ValueError, match="2\\^63 ?- ?1"):
            index2.add(np.repeat(x, 2, axis=0))
        assert sorted(index2.ids().tolist()) == [2**63 - 3, 2**63 - 2]
