"""`make demo` end to end on a tiny 384-d data set: it says where its files are, and only claims to have left
them when --keep asked for it."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np


def tiny_data(tmp_path, rng):
    x = rng.standard_normal((400, 384)).astype(np.float16)
    q = x[:3].astype(np.float32) + 0.01 * rng.standard_normal((3, 384)).astype(np.float32)
    gt = np.argsort(-(q @ x.astype(np.float32).T), axis=1)[:, :10]
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "base.npy", x)
    np.save(folder / "queries.npy", q.astype(np.float16))
    np.save(folder / "gt.npy", gt)
    return folder


def test_the_demo_deletes_its_temporary_files_and_keeps_them_only_when_asked(tmp_path, rng):
    data = tiny_data(tmp_path, rng)
    demo = [sys.executable, "-m", "adanns.demo", "--data", str(data), "--nlist", "16"]
    r = subprocess.run(demo, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "left in" not in r.stdout and "temporary folder deleted now" in r.stdout
    gone = re.search(r"to (\S+), a temporary folder deleted", r.stdout).group(1)
    assert not (tmp_path / gone).exists()
    keep = tmp_path / "kept"
    r = subprocess.run([*demo, "--keep", str(keep)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"kept {keep / 'wordnet.adanns'}" in r.stdout
    assert (keep / "wordnet.adanns").is_file() and any((keep / "data" / "wordnet").iterdir())
