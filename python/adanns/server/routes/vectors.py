"""Vectors of an index: upsert (JSON or .npy body) and removal."""

from __future__ import annotations

from typing import Optional

import numpy as np
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import ValidationError

from ..deps import IndexName, get_store, require_api_key, run_blocking
from ..errors import BodyTooLarge, Invalid, UnsupportedMediaType, describe_validation
from ..npy import NPY, npy_at
from ..schemas import Error, Removal, Upsert, WriteAck
from ..store import Store

router = APIRouter(prefix="/indexes/{name}/vectors", tags=["vectors"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Error}, 404: {"model": Error}, 413: {"model": Error},
                              422: {"model": Error}, 503: {"model": Error}, 507: {"model": Error}})

_NPY_DOC = (f"Upsert (existing ids are replaced). Body: JSON {{ids, vectors}}, or `{NPY}`: a float (n, dim) "
            "array followed by an int (n,) ids array in the same body, or ids in the `ids` query parameter "
            "(comma-separated, e.g. `?ids=7,8,9`). Without ids, the vectors get consecutive ids after the largest "
            "id so far, returned in the answer. Kinds that learn from data (all but flat) train on their first "
            "`train_size` vectors.")


@router.post("", response_model=WriteAck, response_model_exclude_none=True, description=_NPY_DOC,
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": Upsert.model_json_schema()},
                 NPY: {"schema": {"type": "string", "format": "binary"}}}, "required": True}})
async def upsert_vectors(request: Request, name: str = IndexName,
                         ids: Optional[str] = Query(None, description=f"comma-separated ids, for a {NPY} body"),
                         store: Store = Depends(get_store)):
    collection = store.get(name)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type == NPY:
        vectors, id_array = _read_npy(body, ids)
    elif content_type in ("application/json", ""):
        try:
            parsed = Upsert.model_validate_json(body)
        except ValueError as e:
            raise _as_invalid(e) from None
        if ids is not None:
            raise Invalid("the ids query parameter is only for application/x-npy bodies")
        id_array = None if parsed.ids is None else np.array(parsed.ids, dtype=np.int64)
        vectors = _rectangular(parsed.vectors)
    else:
        raise UnsupportedMediaType(f"unsupported content type {content_type!r}; send application/json or {NPY}")
    _check_count(request, len(vectors))
    written = await run_blocking(request, collection.upsert, id_array, vectors)
    return WriteAck(count=len(written), total=collection.info()["count"],
                    ids=written.tolist() if id_array is None else None)


@router.delete("", response_model=WriteAck, response_model_exclude_none=True)
async def remove_vectors(request: Request, removal: Removal = Body(...), name: str = IndexName,
                         store: Store = Depends(get_store)):
    collection = store.get(name)
    _check_count(request, len(removal.ids))
    count = await run_blocking(request, collection.remove, np.array(removal.ids, dtype=np.int64))
    return WriteAck(count=count, total=collection.info()["count"])


def _check_count(request: Request, n: int) -> None:
    limit = request.app.state.settings.max_write_vectors
    if n > limit:
        raise BodyTooLarge(f"{n} vectors in one write; the limit is {limit}: split the write")


def _rectangular(rows: list) -> np.ndarray:
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise Invalid(f"vectors must all have the same length, got lengths {sorted(lengths)[:5]}")
    return np.array(rows, dtype=np.float64)  # float64 first: overflow to float32 inf is then caught as such


def _read_npy(body: bytes, ids_param: Optional[str]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    vectors, end = npy_at(body, 0, "the vectors")
    second = npy_at(body, end, "the ids")[0] if end < len(body) else None
    if vectors.dtype.kind != "f":
        raise Invalid(f"vectors must be floating-point, got dtype {vectors.dtype}")
    if second is not None and ids_param is not None:
        raise Invalid("give the ids either as a second .npy array in the body or as the ids query parameter, "
                      "not both")
    if second is not None:
        return vectors, second
    if ids_param is None:
        return vectors, None  # default ids
    try:
        id_array = np.array([int(s) for s in ids_param.split(",") if s.strip()], dtype=np.int64)
    except (ValueError, OverflowError):
        raise Invalid("the ids query parameter must be comma-separated integers in [0, 2^63)") from None
    return vectors, id_array


def _as_invalid(error: ValueError) -> Invalid:
    if isinstance(error, ValidationError):
        return Invalid(describe_validation(error.errors(include_url=False)))
    return Invalid(str(error))
