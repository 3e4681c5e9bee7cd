"""The package as a user installs it: the wheel, in a fresh virtual environment, used from outside the
source tree. A bare install (no extras) must run every command that needs no extra (build, tune, search,
info, bench without peers or plots) and name the extra in the message of those that do; `[server]` then
adds `adanns serve`.

Cost (measured on 2 busy vCPUs: ~10 s for the module): the wheel is built once, reusing the persistent
scikit-build build folder `build/{wheel_tag}` that `make install` keeps (an incremental CMake build, about a
second when the core is up to date); the venv is made without pip (this interpreter's pip installs into it
with `--python`); numpy, tqdm and the server packages come from the package index through pip's cache.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "wordnet-sample"


def _run(cmd, cwd, check=True, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", REPO, "-w", out], cwd=REPO)
    (path,) = glob.glob(str(out / "adanns-*.whl"))
    return Path(path)


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv holding the wheel and its core dependencies only (no extras)."""
    root = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    _run([sys.executable, "-m", "pip", "--python", root / "bin" / "python", "install", "-q", wheel], cwd=root.parent)
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder outside the source tree, holding small inputs."""
    d = tmp_path_factory.mktemp("outside")
    rng = np.random.default_rng()
    np.save(d / "b.npy", rng.standard_normal((600, 16)).astype(np.float32))
    np.save(d / "q.npy", rng.standard_normal((40, 16)).astype(np.float32))
    return d


def test_a_bare_install_runs_build_tune_search_info_and_bench_from_outside_the_tree(venv, work):
    py, adanns = venv / "bin" / "python", venv / "bin" / "adanns"
    where = _run([py, "-c", "import adanns, importlib.util as u; print(adanns.__file__); "
                            "print([m for m in ('fastapi', 'uvicorn', 'httpx', 'faiss', 'matplotlib') if u.find_spec(m)])"],
                 cwd=work).stdout.split("\n")
    assert where[0].startswith(str(venv)) and where[1] == "[]"  # the installed package, and no extra leaked in
    base, queries = SAMPLE / "base.npy", SAMPLE / "queries.npy"
    _run([adanns, "build", base, "-o", "wn.adanns", "--nlist", "16", "-q"], cwd=work)
    r = _run([adanns, "search", "wn.adanns", queries, "-o", "out.npz"], cwd=work)
    assert "nprobe 8" in r.stderr  # the untuned default, said on stderr
    ids = np.load(work / "out.npz")["ids"]
    truth = np.load(SAMPLE / "gt.npy")[:, :10]
    recall = np.mean([len(np.intersect1d(a, b)) for a, b in zip(ids, truth)]) / 10
    assert recall > 0.9, recall
    _run([adanns, "tune", "wn.adanns", queries, "--sample", "50", "-q"], cwd=work)
    assert "default target recall@10 0.95" in _run([adanns, "search", "wn.adanns", queries], cwd=work).stderr
    info = _run([adanns, "info", "wn.adanns"], cwd=work).stdout
    assert "metric     cosine" in info and "bytes on disk" in info and "tuned      k=10" in info
    # bench works without its extra when the peers and plots are left out ...
    _run([adanns, "bench", "--base", "b.npy", "--queries", "q.npy", "--out", "bench", "--families", "flat",
          "--peers", "none", "--no-plots", "--quick", "-q"], cwd=work)
    assert (work / "bench" / "results.json").exists()
    # ... and the commands that need an extra say which one
    for cmd, extra in [([adanns, "serve", "--data-dir", "data"], "adanns[server]"),
                       ([adanns, "bench", "--base", "b.npy", "--queries", "q.npy", "--out", "bench2", "--families",
                         "flat", "--quick", "-q"], "adanns[bench]"),
                       ([py, "-m", "adanns.demo", "--data", SAMPLE], "adanns[server]")]:
        r = _run(cmd, cwd=work, check=False)
        assert r.returncode == 1 and extra in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_server_extra_serves_an_index_built_by_the_cli(venv, wheel, work):
    """Runs after the bare test (it adds to the same venv)."""
    py, adanns = venv / "bin" / "python", venv / "bin" / "adanns"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", f"{wheel}[server]"], cwd=work)
    _run([adanns, "build", "b.npy", "-o", "small.adanns", "--kind", "flat", "-q"], cwd=work)
    port = _run([py, "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"],
                cwd=work).stdout.strip()
    proc = subprocess.Popen([adanns, "serve", "--data-dir", "data", "--index", "small=small.adanns", "--port", port,
                             "--log-level", "warning"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    probe = ("import httpx, sys; r = httpx.get(sys.argv[1] + '/healthz', timeout=1); "
             "i = httpx.get(sys.argv[1] + '/indexes/small', timeout=5).json(); print(r.status_code, i['count'], i['metric'])")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            r = _run([py, "-c", probe, f"http://127.0.0.1:{port}"], cwd=work, check=False)
            if r.returncode == 0:
                break
            assert time.monotonic() < deadline, r.stderr
            time.sleep(0.2)
        assert r.stdout.split() == ["200", "600", "cosine"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
