"""The machine a run was measured on: CPU model and SIMD flags, cores, load, library versions."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "amx_tile")


def _cpu() -> tuple[str, list]:
    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = value.split()
                    break
    except OSError:
        pass
    return model, flags


def loadavg():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def info() -> dict:
    import adanns

    model, flags = _cpu()
    out = {"cpu_model": model, "simd_flags": [f for f in SIMD_FLAGS if f in flags], "logical_cpus": os.cpu_count(),
           "loadavg_start": loadavg(), "python": sys.version.split()[0], "numpy": np.__version__,
           "adanns": adanns.__version__, "adanns_simd": adanns.simd_level()}
    from importlib import metadata

    for mod, dist in (("faiss", "faiss-cpu"), ("hnswlib", "hnswlib")):
        try:
            out[mod] = getattr(__import__(mod), "__version__", None) or metadata.version(dist)
        except (ImportError, metadata.PackageNotFoundError):
            out[mod] = None
    return out
