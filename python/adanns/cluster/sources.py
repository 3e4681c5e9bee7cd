"""The input of a sharded build, cut into chunks that a worker reads on its own: one .npy file, a directory
of .npy files (rows numbered across files in name order), or Parquet (a file or a directory of them) with a
vector column (list or fixed-size list of floats) and optionally an id column.

A chunk names a file and a row range, never holds rows, so the driver plans a corpus larger than its memory
and each worker reads only its rows (.npy through a memory map, Parquet one row group at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Chunk:
    path: str
    format: str  # "npy" | "parquet"
    start: int  # first row in the file (npy) or row group index (parquet)
    stop: int  # npy: one past the last row; parquet: start + 1
    first_id: int  # default id of the chunk's first row: its position in the whole input
    rows: int


@dataclass(frozen=True)
class Source:
    chunks: list
    rows: int
    dim: int
    column: str | None = None
    id_column: str | None = None


def open_source(path, chunk_rows: int = 65536, column: str = "vector", id_column: str | None = None) -> Source:
    """Plans the chunks of ``path``; ValueError when it is not one of the inputs above, or files disagree on
    the dimension."""
    path = Path(path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if path.is_dir():
        npys, parquets = sorted(path.glob("*.npy")), sorted(path.glob("*.parquet"))
        if npys and parquets:
            raise ValueError(f"{path}: holds both .npy and .parquet files; give one kind")
        files = npys or parquets
        if not files:
            raise ValueError(f"{path}: no .npy or .parquet files in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"{path}: no such file or directory")
    parquet = files[0].suffix == ".parquet"
    if not parquet and id_column is not None:
        raise ValueError("an id column applies to Parquet input only (.npy rows are numbered 0..n-1)")
    chunks, rows, dim = [], 0, None
    for f in files:
        if parquet:
            file_dim, groups = _parquet_shape(f, column, id_column)
            for g, n in enumerate(groups):
                chunks.append(Chunk(str(f), "parquet", g, g + 1, rows, n))
                rows += n
        else:
            file_dim, n = _npy_shape(f)
            for a in range(0, n, chunk_rows):
                b = min(n, a + chunk_rows)
                chunks.append(Chunk(str(f), "npy", a, b, rows + a, b - a))
            rows += n
        if dim is not None and file_dim != dim:
            raise ValueError(f"{f}: dimension {file_dim}, but the files before it have dimension {dim}")
        dim = file_dim
    if rows == 0:
        raise ValueError(f"{path}: holds no rows")
    return Source([c for c in chunks if c.rows], rows, dim, column if parquet else None, id_column)


def _npy_shape(f: Path) -> tuple[int, int]:
    try:
        a = np.load(f, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{f}: not a readable .npy file ({e})") from None
    if a.ndim != 2 or a.dtype.kind != "f":
        raise ValueError(f"{f}: expected a 2-D float array, got dtype {a.dtype} shape {a.shape}")
    return a.shape[1], a.shape[0]


def _parquet_shape(f: Path, column: str, id_column: str | None) -> tuple[int, list[int]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ValueError(f"{f}: not a readable Parquet file ({e})") from None
    names = pf.schema_arrow.names
    for c in [column] + ([id_column] if id_column else []):
        if c not in names:
            raise ValueError(f"{f}: no column {c!r} (columns: {names})")
    groups = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    first = next((g for g, n in enumerate(groups) if n), None)
    if first is None:
        return 0, groups
    vectors = _vectors_of(pf.read_row_group(first, columns=[column]).column(column), f, column)
    return vectors.shape[1], groups


def _vectors_of(col, f, column: str) -> np.ndarray:
    import pyarrow as pa

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type)):
        raise ValueError(f"{f}: column {column!r} must hold lists of floats, got {col.type}")
    if col.null_count:
        raise ValueError(f"{f}: column {column!r} has null rows")
    lengths = set(np.asarray(col.value_lengths()).tolist()) if not pa.types.is_fixed_size_list(col.type) else \
        {col.type.list_size}
    if len(lengths) > 1:
        raise ValueError(f"{f}: column {column!r} holds vectors of several lengths {sorted(lengths)[:5]}")
    values = np.asarray(col.flatten())
    if values.dtype.kind != "f":
        raise ValueError(f"{f}: column {column!r} must hold floats, got {values.dtype}")
    return values.reshape(len(col), lengths.pop() if lengths else 0)


def read_chunk(chunk: Chunk, column: str | None = None, id_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 (n,), vectors float32 (n, d)) of one chunk."""
    if chunk.format == "npy":
        a = np.load(chunk.path, mmap_mode="r", allow_pickle=False)
        vectors = np.ascontiguousarray(a[chunk.start:chunk.stop], dtype=np.float32)
        return np.arange(chunk.first_id, chunk.first_id + chunk.rows, dtype=np.int64), vectors
    import pyarrow.parquet as pq

    table = pq.ParquetFile(chunk.path).read_row_group(chunk.start, columns=[column] + ([id_column] if id_column else []))
    vectors = np.ascontiguousarray(_vectors_of(table.column(column), chunk.path, column), dtype=np.float32)
    if id_column:
        ids = np.asarray(table.column(id_column).to_numpy())
        if ids.dtype.kind not in "iu":
            raise ValueError(f"{chunk.path}: id column {id_column!r} must hold integers, got {ids.dtype}")
        ids = ids.astype(np.int64)
    else:
        ids = np.arange(chunk.first_id, chunk.first_id + chunk.rows, dtype=np.int64)
    return ids, vectors


def read_sample(source: Source, size: int, seed: int) -> np.ndarray:
    """``size`` rows drawn uniformly without replacement (all rows when there are fewer), in input order,
    reading one chunk at a time."""
    rng = np.random.default_rng(seed)
    if size >= source.rows:
        picks = np.arange(source.rows)
    else:
        picks = np.sort(rng.choice(source.rows, size=size, replace=False))
    out = []
    for c in source.chunks:
        lo, hi = np.searchsorted(picks, [c.first_id, c.first_id + c.rows])
        if hi > lo:
            _, vectors = read_chunk(c, source.column, source.id_column)
            out.append(vectors[picks[lo:hi] - c.first_id])
    return np.concatenate(out)
