"""Shared helpers for the benchmarks: corpus loading, recall, timing, CPU record, result files.

Import this module *before* numpy/faiss in a benchmark script: it pins the BLAS/OpenMP pools to one
thread (benchmarks compare single-threaded kernels; the environment can still override it).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data" / "wordnet-minilm"

# CPU flags worth showing in the Markdown header (the JSON keeps the full list).
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
               "avx512_vnni", "avx512_vbmi", "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


# ----------------------------------------------------------------------------------------- corpus
@dataclass
class Corpus:
    name: str
    base: np.ndarray      # (n, d) float32, C-contiguous
    queries: np.ndarray   # (nq, d) float32
    gt: np.ndarray        # (nq, 100) int64: exact top-100 ids by inner product
    path: str

    @property
    def dim(self) -> int:
        return self.base.shape[1]


def add_data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="corpus directory with base.npy, queries.npy, gt.npy (default: %(default)s)")


def load_corpus(path: str | os.PathLike = DEFAULT_DATA) -> Corpus:
    """The wordnet-minilm corpus (float16 on disk) as float32 arrays."""
    p = Path(path).resolve()
    missing = [f for f in ("base.npy", "queries.npy", "gt.npy") if not (p / f).exists()]
    if missing:
        raise SystemExit(f"corpus not found: {p} lacks {', '.join(missing)} (use --data DIR)")
    base = np.ascontiguousarray(np.load(p / "base.npy").astype(np.float32))
    queries = np.ascontiguousarray(np.load(p / "queries.npy").astype(np.float32))
    gt = np.load(p / "gt.npy").astype(np.int64)
    if gt.shape[0] != queries.shape[0]:
        raise SystemExit(f"gt has {gt.shape[0]} rows but there are {queries.shape[0]} queries")
    return Corpus(p.name, base, queries, gt, str(p))


# ----------------------------------------------------------------------------------------- recall
def recall_at(ids: np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    """recall@k = |found top-k ∩ true top-k| / k, averaged over queries (padding ids -1 never match)."""
    found = np.asarray(ids)[:, :k]
    true = np.asarray(gt)[:, :k]
    if found.shape[1] < k or true.shape[1] < k:
        raise ValueError(f"need at least k={k} columns, got {found.shape[1]} found / {true.shape[1]} gt")
    hits = (found[:, :, None] == true[:, None, :]).any(axis=2).sum(axis=1)
    return float(hits.mean() / k)


# ----------------------------------------------------------------------------------------- timing
@dataclass
class Timing:
    best: float          # seconds, fastest repeat
    median: float        # seconds
    runs: list           # every repeat, seconds
    cpu_per_wall: float  # process CPU time / wall time over all repeats (~1.0 means one busy thread)

    def rate(self, n: int) -> float:
        """Items per second from the best repeat (e.g. queries per second)."""
        return n / self.best

    def as_dict(self) -> dict:
        return {"best_s": self.best, "median_s": self.median, "runs_s": self.runs,
                "cpu_per_wall": round(self.cpu_per_wall, 3)}


def _summarise(runs: list[float], cpu: float) -> Timing:
    wall = sum(runs)
    return Timing(min(runs), statistics.median(runs), runs, cpu / wall if wall > 0 else float("nan"))


def time_fn(fn, repeats: int = 3, warmup: int = 0) -> Timing:
    """Best-of-`repeats` (and median) wall time of fn()."""
    for _ in range(warmup):
        fn()
    runs, cpu = [], 0.0
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    return _summarise(runs, cpu)


def time_interleaved(fns: dict, repeats: int = 3, warmup: int = 0) -> dict:
    """Times several competitors in turns (a, b, a, b, ...) so that background load drifting over the
    run hits every one alike. Returns {name: Timing}."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    runs = {name: [] for name in fns}
    cpu = {name: 0.0 for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
    return {name: _summarise(runs[name], cpu[name]) for name in fns}


# ----------------------------------------------------------------------------------------- machine
def _cpuinfo() -> tuple[str, list[str]]:
    """Model name and flags of the first CPU listed in /proc/cpuinfo."""
    model, flags = "", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value.split()
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or "unknown", flags


def _git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                                  timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD").strip(), "dirty_files": dirty.splitlines() if dirty else []}


_ADANNS_INFO = None


def _adanns_info() -> dict:
    """adanns version, SIMD level and the identity (mtime, hash) of the loaded _core module, taken once
    per process (the file on disk may be rebuilt while a long benchmark runs)."""
    global _ADANNS_INFO
    if _ADANNS_INFO is not None:
        return _ADANNS_INFO
    try:
        import adanns
        from adanns import _core
        so = Path(_core.__file__)
        _ADANNS_INFO = {
            "version": getattr(adanns, "__version__", None),
            "simd_level": adanns.simd_level(),
            "available_simd_levels": adanns.available_simd_levels(),
            "core_module": str(so),
            "core_mtime": datetime.datetime.fromtimestamp(so.stat().st_mtime).isoformat(timespec="seconds"),
            "core_sha256_12": hashlib.sha256(so.read_bytes()).hexdigest()[:12],
        }
    except ImportError as e:  # pragma: no cover - adanns is the thing under test
        _ADANNS_INFO = {"error": str(e)}
    return _ADANNS_INFO


def machine_info() -> dict:
    """CPU model and flags, SIMD levels in use by adanns and faiss, library versions, load."""
    model, flags = _cpuinfo()
    info = {
        "cpu_model": model,
        "cpu_flags_simd": [f for f in _SIMD_FLAGS if f in flags],
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "thread_env": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                          "MKL_NUM_THREADS")},
        "git": _git_state(),
    }
    info["adanns"] = _adanns_info()
    try:
        import faiss
        entry = {"version": faiss.__version__, "compile_options": faiss.get_compile_options().strip()}
        try:
            entry["simd_level"] = faiss.SIMDConfig.get_level_name()
        except Exception:  # older faiss: no runtime dispatch
            pass
        info["faiss"] = entry
    except ImportError:
        info["faiss"] = None
    return info


def command_line() -> str:
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(REPO_ROOT)
    except ValueError:
        pass
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO_ROOT)
    except ValueError:
        pass
    return " ".join(shlex.quote(a) for a in [str(exe), str(script), *sys.argv[1:]])


def cpu_summary(info: dict) -> str:
    a, f = info.get("adanns") or {}, info.get("faiss") or {}
    return (f"{info['cpu_model']} | {info['logical_cpus']} logical CPUs | load {info['loadavg']} | "
            f"adanns {a.get('simd_level')} | faiss {f.get('version')} {f.get('simd_level', '')}")


# ----------------------------------------------------------------------------------------- results
def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return "" if v is None else str(v)


def markdown_table(columns: list, rows: list) -> str:
    out = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def print_table(title: str, columns: list, rows: list) -> None:
    cells = [[str(c) for c in columns]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    print(f"\n{title}")
    for j, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  " + "  ".join("-" * w for w in widths))
    sys.stdout.flush()


def write_results(name: str, payload: dict, results_dir: str | os.PathLike = RESULTS_DIR) -> tuple[Path, Path]:
    """Writes results/<name>.json and results/<name>.md.

    `payload` maps section names to dicts. A section may carry ``"tables": [{"title", "columns", "rows"}]``
    (rendered into the Markdown) and ``"summary": [str, ...]`` lines; everything is kept in the JSON.
    Sections already in an existing <name>.json that this run did not produce are kept, so a script run
    section by section (``--only``) accumulates one record. Each section gets the machine record and the
    command that produced it."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    jpath, mpath = results_dir / f"{name}.json", results_dir / f"{name}.md"
    record = {"name": name, "sections": {}}
    if jpath.exists():
        try:
            old = json.loads(jpath.read_text())
            if isinstance(old.get("sections"), dict):
                record["sections"].update(old["sections"])
        except (OSError, ValueError):
            pass
    info, cmd = machine_info(), command_line()
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    for section, body in payload.items():
        record["sections"][section] = {**body, "command": cmd, "date": stamp, "machine": info}
    jpath.write_text(dumps(record) + "\n")
    mpath.write_text(render_markdown(record, Path(sys.argv[0]).name, jpath.name))
    return jpath, mpath


def render_markdown(record: dict, script: str, json_name: str) -> str:
    """The Markdown view of a results record (see write_results)."""
    name = record["name"]
    md = [f"# {name}", "",
          f"Generated by `benchmarks/{script}`; full data in `{json_name}`. "
          "Sections may come from different runs: each names its own command, date and CPU.", ""]
    for section, body in record["sections"].items():
        m = body.get("machine", {})
        a, f = m.get("adanns") or {}, m.get("faiss") or {}
        md += [f"## {section}", "",
               f"- command: `{body.get('command')}` ({body.get('date')})",
               f"- CPU: {m.get('cpu_model')}, {m.get('logical_cpus')} logical CPUs, load average "
               f"{m.get('loadavg')} when recorded; flags: {' '.join(m.get('cpu_flags_simd', []))}",
               f"- adanns SIMD level {a.get('simd_level')} (core built {a.get('core_mtime')}, "
               f"sha256 {a.get('core_sha256_12')}); faiss {f.get('version')} ({f.get('simd_level', '')}); "
               f"git {str(m.get('git', {}).get('commit', ''))[:10]}"
               f"{' + uncommitted changes' if m.get('git', {}).get('dirty_files') else ''}", ""]
        for line in body.get("summary", []):
            md.append(f"- {line}")
        if body.get("summary"):
            md.append("")
        for t in body.get("tables", []):
            md += [f"**{t['title']}**", "", markdown_table(t["columns"], t["rows"]), ""]
    return "\n".join(md)


def dumps(obj) -> str:
    """Indented JSON with every list of plain values (table rows, flags) kept on one line."""
    text = json.dumps(obj, indent=1, default=_json_default)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",\n")) + "]", text)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
