"""Search an index; a query shorter than the index dimension is a Matryoshka prefix.

Requests are answered by `search_path.SearchFastPath` before they reach this route; the route
documents the endpoint in the OpenAPI schema and answers the same way (`answer_search`) if the
fast path is ever bypassed.
"""

from __future__ import annotations

import numpy as np
from typing import Optional

from fastapi import APIRouter, Depends, Query, Request, Response

from ..deps import IndexName, get_store, require_api_key, run_blocking
from ..errors import BodyTooLarge, Invalid
from ..npy import NPY
from ..schemas import Error, SearchRequest, SearchResponse, TuneRequest, TuneResponse
from ..search_path import answer_search
from ..store import Store

router = APIRouter(prefix="/indexes/{name}", tags=["search"],
                   responses={401: {"model": Error}, 404: {"model": Error}, 413: {"model": Error},
                              422: {"model": Error}, 503: {"model": Error}, 507: {"model": Error}})


_NPY_DOC = ("Body: JSON (one `vector` or a batch of `vectors`, and the knobs), or `application/x-npy`: a float "
            "(n, d) batch, with the knobs as query parameters (`?k=10&nprobe=32&search_dim=128`: the JSON "
            "fields but the vectors). `Accept: application/x-npz` answers an .npz of `ids` (n, k) int64, "
            "`scores` (n, k) float32 (-inf / +inf at padding, id -1) and `mflops` (n,) instead of JSON.")


@router.post("/search", response_model=SearchResponse, description=_NPY_DOC,
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": SearchRequest.model_json_schema()},
                 NPY: {"schema": {"type": "string", "format": "binary"}}}, "required": True}})
async def search(request: Request, name: str = IndexName,
                 k: Optional[int] = Query(None, description=f"{NPY} bodies only: as the JSON field"),
                 nprobe: Optional[int] = Query(None, description=f"{NPY} bodies only"),
                 ef: Optional[int] = Query(None, description=f"{NPY} bodies only"),
                 search_dim: Optional[int] = Query(None, description=f"{NPY} bodies only"),
                 rerank_dim: Optional[int] = Query(None, description=f"{NPY} bodies only"),
                 rerank_k: Optional[int] = Query(None, description=f"{NPY} bodies only"),
                 target_recall: Optional[float] = Query(None, description=f"{NPY} bodies only"),
                 budget_mflops: Optional[float] = Query(None, description=f"{NPY} bodies only"),
                 filter: Optional[str] = Query(None, description=f"{NPY} bodies only: the filter object as "
                                                                 "(URL-encoded) JSON"),
                 with_payload: Optional[bool] = Query(None, description=f"{NPY} bodies only (answers JSON)")
                 ) -> Response:
    # The gate (search_path.Gate) answers searches before this route; the route documents them and answers
    # the same way when the app runs without the gate.
    body, media = await answer_search(request.app, name, request.headers.get("content-type", "application/json"),
                                      await request.body(), request.scope.get("query_string", b""),
                                      request.headers.get("accept"))
    return Response(body, media_type=media.decode())


@router.post("/tune", response_model=TuneResponse, dependencies=[Depends(require_api_key)],
             summary="Measure recall and cost of the search settings on sample queries; keep the Pareto frontier")
async def tune(body: TuneRequest, request: Request, name: str = IndexName, store: Store = Depends(get_store)):
    collection = store.get(name)
    collection.require(writing=True)
    limit = request.app.state.settings.max_queries
    if len(body.vectors) > limit:
        raise BodyTooLarge(f"{len(body.vectors)} queries in one request; the limit is {limit}")
    if len({len(r) for r in body.vectors}) != 1:
        raise Invalid("the vectors of a batch must all have the same length")
    queries = np.array(body.vectors, dtype=np.float32)
    if not np.isfinite(queries).all():
        raise Invalid("vectors contain NaN or infinity (or values beyond float32)")
    frontier = await run_blocking(request, collection.tune, queries, body.k, request.app.state.settings.search_threads,
                                  sample=body.sample, seed=body.seed)
    return TuneResponse(k=frontier.k, queries=frontier.nq,
                        points=[{"params": p.params, "recall": p.recall, "recall_lcb": p.recall_lcb,
                                 "mflops": p.mflops} for p in frontier.points])
