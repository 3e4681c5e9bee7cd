"""Search an index; a query shorter than the index dimension is a Matryoshka prefix.

This is the hot path, so it avoids FastAPI's per-request dependency solving and response-model
round trip: the body is parsed and validated by pydantic in one step (``model_validate_json``),
and the response is serialised once. The OpenAPI schema still documents both bodies.
"""

from __future__ import annotations

import json
import math

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from ..deps import IndexName, require_api_key, run_blocking
from ..errors import Invalid, describe_validation
from ..schemas import Error, SearchRequest, SearchResponse

router = APIRouter(prefix="/indexes/{name}", tags=["search"],
                   responses={401: {"model": Error}, 404: {"model": Error}, 413: {"model": Error},
                              422: {"model": Error}})


@router.post("/search", response_model=SearchResponse,
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": SearchRequest.model_json_schema()}}, "required": True}})
async def search(request: Request, name: str = IndexName) -> Response:
    require_api_key(request)
    collection = request.app.state.store.get(name)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Invalid(f"unsupported content type {content_type!r}; send application/json")
    try:
        query = SearchRequest.model_validate_json(await request.body())
    except ValidationError as e:
        raise Invalid(describe_validation(e.errors(include_url=False))) from None
    rows = [query.vector] if query.vector is not None else query.vectors
    if len({len(r) for r in rows}) != 1:
        raise Invalid("the vectors of a batch must all have the same length")
    queries = np.array(rows, dtype=np.float64)  # float64 first: overflow to float32 inf is then caught
    res = await run_blocking(request, collection.search, queries, query.k, request.app.state.settings.search_threads,
                             nprobe=query.nprobe, search_dim=query.search_dim, rerank_dim=query.rerank_dim,
                             rerank_k=query.rerank_k)
    # JSON has no infinity: a padding slot (id -1) gets the score null.
    results = [{"ids": ids, "scores": [s if i >= 0 and math.isfinite(s) else None for i, s in zip(ids, scores)]}
               for ids, scores in zip(res.ids.tolist(), res.scores.tolist())]
    body = json.dumps({"results": results, "mflops": res.mflops.tolist()}, separators=(",", ":"))
    return Response(body, media_type="application/json")
