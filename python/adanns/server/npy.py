"""Reading ``application/x-npy`` bodies without trusting their headers: the declared shape is checked
against the bytes actually present before anything is allocated, and the array is a view of the body."""

from __future__ import annotations

import io

import numpy as np

from .errors import Invalid

NPY = "application/x-npy"
NPZ = "application/x-npz"


def npy_at(body: bytes, start: int, what: str) -> tuple[np.ndarray, int]:
    """The .npy array at ``start`` of ``body`` and where it ends. The declared shape is checked against the
    bytes actually present before anything is allocated, and the array is a view of the body."""
    stream = io.BytesIO(body)
    stream.seek(start)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(version, np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise Invalid(f"{what}: body is not a valid .npy array: {e}") from None
    if dtype.hasobject or dtype.kind not in "fiu":
        raise Invalid(f"{what}: .npy arrays of dtype {dtype} are not accepted")
    if any(n < 0 for n in shape):
        raise Invalid(f"{what}: the .npy header declares a negative shape {shape}")
    count = 1
    for n in shape:
        count *= n
    offset = stream.tell()
    size = count * dtype.itemsize
    if size > len(body) - offset:
        raise Invalid(f"{what}: the .npy header declares shape {shape} ({size} bytes) but the body holds "
                      f"{len(body) - offset} bytes after it")
    array = np.frombuffer(body, dtype, count, offset).reshape(shape, order="F" if fortran else "C")
    return array, offset + size
