"""ADANNS_SIMD picks the kernel level at start-up and refuses levels the CPU lacks."""

import os
import subprocess
import sys

import adanns


def _run(level: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ADANNS_SIMD=level)
    return subprocess.run([sys.executable, "-c", "import adanns; print(adanns.simd_level())"],
                          env=env, capture_output=True, text=True)


def test_env_selects_each_available_level():
    for level in adanns.available_simd_levels():
        out = _run(level)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == level


def test_env_rejects_unknown_level():
    out = _run("sse9")
    assert out.returncode != 0
    assert "unknown SIMD level 'sse9'" in out.stderr


def test_env_refuses_level_cpu_lacks():
    missing = [lvl for lvl in ("avx2", "avx512") if lvl not in adanns.available_simd_levels()]
    for level in missing:
        out = _run(level)
        assert out.returncode != 0
        assert "does not support" in out.stderr
