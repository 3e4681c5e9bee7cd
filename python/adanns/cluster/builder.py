"""The sharded build: train once on a sample, then read, route and add the rows in parallel with Ray.

1. The driver plans the input's chunks (`sources`), reads a seeded sample and trains one empty index on it
   (the IVF coarse quantizer; for ivfopq also the OPQ rotation and PQ codebooks). That trained, empty index
   is the template, put once in Ray's object store: every shard starts from the same bytes.
2. Ray Data `map_batches` with a pool of actors reads the chunks, computes each row's shard
   (`sharding.shard_of`) and writes the rows of each shard to a part file under the output directory.
3. One Ray task per shard loads the template, adds its parts (assigning rows to lists and encoding them),
   and saves ``shard-<s>.adanns``; the driver writes the checksummed manifest last.

The output directory must be reachable by every node (a shared file system) when the cluster has several.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np

import adanns

from . import manifest as manifest_io
from . import require_ray
from .sharding import RULE, shard_of
from .sources import Chunk, open_source, read_chunk, read_sample

log = logging.getLogger("adanns.cluster")
KINDS = ("flat", "ivf", "ivfopq")


def build(input, out_dir, shards: int, kind: str = "ivf", metric: str | None = None, name: str = "default",
          params: dict | None = None, column: str = "vector", id_column: str | None = None,
          chunk_rows: int = 65536, address: str | None = None) -> manifest_io.Manifest:
    """Builds ``shards`` index files and a manifest in ``out_dir`` from ``input`` (.npy, a directory of .npy,
    or Parquet with a vector ``column``); ``params`` as the service's kind parameters (nlist, cluster_dim,
    m, pq_dim, nbits, opq, train_size, seed, niter). Connects to Ray at ``address`` (None: the running
    cluster or a new local one). Returns the manifest."""
    ray = require_ray()
    from ..server import kinds
    from ..server.errors import Invalid
    from .names import check_index_name

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 4096:
        raise ValueError(f"shards must be an integer in 1..4096, got {shards!r}")
    check_index_name(name)
    metric = metric or ("cosine" if kind in ("flat", "ivf") else "ip")
    out_dir = Path(out_dir)
    if (out_dir / manifest_io.FILE_NAME).exists():
        raise ValueError(f"{out_dir} already holds a manifest; choose an empty directory")
    source = open_source(input, chunk_rows, column, id_column)
    try:
        params = kinds.resolve(source.dim, metric, kind, dict(params or {}))
    except Invalid as e:
        raise ValueError(e.detail) from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    started = time.perf_counter()
    template = kinds.new_index(source.dim, metric, kind, params)
    sample_rows = 0
    if kind != "flat":
        sample = read_sample(source, params["train_size"], params["seed"])
        sample_rows = len(sample)
        if sample_rows < kinds.min_train_size(kind, params):
            raise ValueError(f"kind {kind!r} needs at least {kinds.min_train_size(kind, params)} rows to train, "
                             f"the input has {sample_rows}")
        template.train(sample)
        del sample
    trained = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".parts-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        template_ref = ray.put(_index_bytes(template))
        parts = _route(ray, source, shards, staging)
        routed = time.perf_counter()
        files = [f"shard-{s}.adanns" for s in range(shards)]
        jobs = [_build_shard.remote(template_ref, sorted(parts.get(s, [])), str(out_dir / files[s]))
                for s in range(shards)]
        results = _unwrap(ray, jobs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    done = time.perf_counter()
    shard_files = [manifest_io.ShardFile(s, files[s], rows, size, crc) for s, (rows, size, crc) in enumerate(results)]
    m = manifest_io.Manifest(name, kind, source.dim, metric, params, RULE, shard_files, sum(r[0] for r in results),
                             {"input": str(input), "sample_rows": sample_rows, "train_seconds": round(trained - started, 3),
                              "route_seconds": round(routed - trained, 3), "shard_build_seconds": round(done - routed, 3),
                              "seconds": round(done - started, 3)})
    if m.rows != source.rows:
        raise ValueError(f"the shards hold {m.rows} rows, the input {source.rows}")
    manifest_io.write(out_dir, m)
    return m


def _index_bytes(index) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "template.adanns")
        index.save(path)
        with open(path, "rb") as f:
            return f.read()


class _Router:
    """A Ray Data actor: reads chunks and writes each shard's rows to a part file."""

    def __init__(self, shards: int, staging: str, column, id_column):
        self.shards, self.staging, self.column, self.id_column = shards, staging, column, id_column

    def __call__(self, batch: dict) -> dict:
        out = {"shard": [], "part": []}
        for i in range(len(batch["path"])):
            chunk = Chunk(str(batch["path"][i]), str(batch["format"][i]), int(batch["start"][i]),
                          int(batch["stop"][i]), int(batch["first_id"][i]), int(batch["rows"][i]))
            ids, vectors = read_chunk(chunk, self.column, self.id_column)
            owner = shard_of(ids, self.shards)
            for s in np.unique(owner).tolist():
                mine = owner == s
                # The chunk's input position first in the name: a shard adds its parts in input order.
                part = os.path.join(self.staging, f"{chunk.first_id:020d}-{s}.npz")
                np.savez(part, ids=ids[mine], vectors=vectors[mine])
                out["shard"].append(s)
                out["part"].append(part)
        return {"shard": np.array(out["shard"], np.int64), "part": np.array(out["part"], dtype=object)}


def _route(ray, source, shards: int, staging: Path) -> dict[int, list[str]]:
    items = [asdict(c) for c in source.chunks]
    workers = max(1, min(len(items), int(ray.available_resources().get("CPU", 1))))
    ds = ray.data.from_items(items).map_batches(
        _Router, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs={"shards": shards, "staging": str(staging), "column": source.column,
                               "id_column": source.id_column})
    parts: dict[int, list[str]] = {}
    try:
        rows = ds.take_all()
    except Exception as e:  # noqa: BLE001 - Ray wraps the worker's error: surface the ValueError itself
        raise _cause(e) from None
    for row in rows:
        parts.setdefault(int(row["shard"]), []).append(str(row["part"]))
    return parts


def _build_shard_impl(template: bytes, parts: list[str], path: str) -> tuple[int, int, int]:
    with tempfile.TemporaryDirectory() as d:
        tmp = os.path.join(d, "template.adanns")
        with open(tmp, "wb") as f:
            f.write(template)
        index = adanns.load(tmp)
    for part in parts:
        with np.load(part) as z:
            index.add(z["vectors"], z["ids"])
    index.save(path)
    return len(index), os.path.getsize(path), manifest_io.file_crc32(Path(path))


def _unwrap(ray, jobs):
    try:
        return ray.get(jobs)
    except Exception as e:  # noqa: BLE001
        raise _cause(e) from None


def _cause(error: Exception) -> Exception:
    """The user-level error inside Ray's wrappers (a duplicate id is a ValueError from the shard's add)."""
    seen = error
    while seen is not None:
        if isinstance(seen, (ValueError, TypeError, OSError)) and "ray" not in type(seen).__module__:
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    return RuntimeError(f"the sharded build failed: {error}")


def _remote(fn):
    """Wraps ``fn`` as a Ray task on first use (Ray is imported only when a build runs)."""
    holder = {}

    class Lazy:
        @staticmethod
        def remote(*args):
            if "task" not in holder:
                holder["task"] = require_ray().remote(num_cpus=1)(fn)
            return holder["task"].remote(*args)

    return Lazy


_build_shard = _remote(_build_shard_impl)
