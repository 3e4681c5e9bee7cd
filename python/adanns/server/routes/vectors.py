"""Vectors of an index: upsert (JSON or .npy body) and removal."""

from __future__ import annotations

from typing import Optional

import numpy as np
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import ValidationError

from ..deps import IndexName, get_store, require_api_key, run_blocking
from ..errors import BodyTooLarge, Invalid, UnsupportedMediaType, describe_validation
from ..npy import NPY, npy_at
from ..payloads import columns_from_payload
from ..schemas import Attributes, Error, Removal, Upsert, VectorPayload, WriteAck
from ..store import Store

router = APIRouter(prefix="/indexes/{name}/vectors", tags=["vectors"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Error}, 404: {"model": Error}, 413: {"model": Error},
                              422: {"model": Error}, 503: {"model": Error}, 507: {"model": Error}})

_NPY_DOC = (f"Upsert (existing ids are replaced). Body: JSON {{ids, vectors}}, or `{NPY}`: a float (n, dim) "
            "array followed by an int (n,) ids array in the same body, or ids in the `ids` query parameter "
            "(comma-separated, e.g. `?ids=7,8,9`). Without ids, the vectors get consecutive ids after the largest "
            "id so far, returned in the answer. Kinds that learn from data (all but flat) train on their first "
            "`train_size` vectors. Attributes (flat, ivf): JSON `attributes` (field -> a value per vector) or "
            "`payload` (an object per vector); after the arrays of an x-npy body, a JSON object "
            "`{\"attributes\": ...}` or `{\"payload\": ...}`. An upsert replaces the attributes of its ids; "
            "they are checked against the field types (declared, or inferred from the first values) before "
            "anything is written.")


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
        vectors, id_array, extra = _read_npy(body, ids)
        attributes = None if extra is None else _attribute_columns(extra.attributes, extra.payload, len(vectors))
    elif content_type in ("application/json", ""):
        try:
            parsed = Upsert.model_validate_json(body)
        except ValueError as e:
            raise _as_invalid(e) from None
        if ids is not None:
            raise Invalid("the ids query parameter is only for application/x-npy bodies")
        id_array = None if parsed.ids is None else np.array(parsed.ids, dtype=np.int64)
        vectors = _rectangular(parsed.vectors)
        attributes = _attribute_columns(parsed.attributes, parsed.payload, len(vectors))
    else:
        raise UnsupportedMediaType(f"unsupported content type {content_type!r}; send application/json or {NPY}")
    _check_count(request, len(vectors))
    written = await run_blocking(request, collection.upsert, id_array, vectors, attributes)
    return WriteAck(count=len(written), total=collection.info()["count"],
                    ids=written.tolist() if id_array is None else None)


@router.delete("", response_model=WriteAck, response_model_exclude_none=True)
async def remove_vectors(request: Request, removal: Removal = Body(...), name: str = IndexName,
                         store: Store = Depends(get_store)):
    collection = store.get(name)
    _check_count(request, len(removal.ids))
    count = await run_blocking(request, collection.remove, np.array(removal.ids, dtype=np.int64))
    return WriteAck(count=count, total=collection.info()["count"])


@router.get("/{id}", response_model=VectorPayload, summary="The attributes (payload) of one vector")
async def get_vector(request: Request, id: int = Path(..., ge=0, lt=2**63), name: str = IndexName,
                     store: Store = Depends(get_store)):
    collection = store.get(name)
    return VectorPayload(id=id, payload=await run_blocking(request, collection.payload, id))


def _attribute_columns(attributes, payload, n: int) -> Optional[dict]:
    """The attributes of a write as columns (field -> a value per vector), or None."""
    return payload if payload is None and attributes is None else \
        attributes if attributes is not None else columns_from_payload(payload, n)


def _check_count(request: Request, n: int) -> None:
    limit = request.app.state.settings.max_write_vectors
    if n > limit:
        raise BodyTooLarge(f"{n} vectors in one write; the limit is {limit}: split the write")


def _rectangular(rows: list) -> np.ndarray:
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise Invalid(f"vectors must all have the same length, got lengths {sorted(lengths)[:5]}")
    return np.array(rows, dtype=np.float64)  # float64 first: overflow to float32 inf is then caught as such


def _read_npy(body: bytes, ids_param: Optional[str]) -> tuple[np.ndarray, Optional[np.ndarray], Optional[Attributes]]:
    """(vectors, ids or None, attributes or None) of an x-npy upsert: the vectors' array, then optionally the
    ids' array, then optionally a JSON object with the attributes."""
    vectors, end = npy_at(body, 0, "the vectors")
    second = None
    if body.startswith(b"\x93NUMPY", end):
        second, end = npy_at(body, end, "the ids")
    extra = None
    if end < len(body):
        try:
            extra = Attributes.model_validate_json(body[end:])
        except ValueError as e:
            raise Invalid(f"after the arrays: {_as_invalid(e).detail} (an x-npy upsert is the vectors' .npy, "
                          "optionally the ids' .npy, optionally a JSON object of attributes)") from None
    if vectors.dtype.kind != "f":
        raise Invalid(f"vectors must be floating-point, got dtype {vectors.dtype}")
    if vectors.ndim != 2:  # counted with len() below: a 0-d array has none
        raise Invalid(f"vectors must be a 2-D (n, dim) array, got shape {vectors.shape}")
    if second is not None and ids_param is not None:
        raise Invalid("give the ids either as a second .npy array in the body or as the ids query parameter, "
                      "not both")
    if second is not None:
        return vectors, second, extra
    if ids_param is None:
        return vectors, None, extra  # default ids
    try:
        id_array = np.array([int(s) for s in ids_param.split(",") if s.strip()], dtype=np.int64)
    except (ValueError, OverflowError):
        raise Invalid("the ids query parameter must be comma-separated integers in [0, 2^63)") from None
    return vectors, id_array, extra


def _as_invalid(error: ValueError) -> Invalid:
    if isinstance(error, ValidationError):
        return Invalid(describe_validation(error.errors(include_url=False)))
    return Invalid(str(error))
