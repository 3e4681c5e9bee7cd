"""Search an index; a query shorter than the index dimension is a Matryoshka prefix."""

from __future__ import annotations

import math

import numpy as np
from fastapi import APIRouter, Depends, Request

from ..deps import IndexName, get_store, require_api_key, run_blocking
from ..errors import Invalid
from ..schemas import Error, Hits, SearchRequest, SearchResponse, TuneRequest, TuneResponse
from ..store import Store

router = APIRouter(prefix="/indexes/{name}", tags=["search"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Error}, 404: {"model": Error}, 413: {"model": Error},
                              422: {"model": Error}})


@router.post("/search", response_model=SearchResponse)
async def search(query: SearchRequest, request: Request, name: str = IndexName, store: Store = Depends(get_store)):
    collection = store.get(name)
    rows = [query.vector] if query.vector is not None else query.vectors
    if len({len(r) for r in rows}) != 1:
        raise Invalid("the vectors of a batch must all have the same length")
    queries = np.array(rows, dtype=np.float64)
    res = await run_blocking(request, collection.search, queries, query.k, request.app.state.settings.search_threads,
                             nprobe=query.nprobe, search_dim=query.search_dim, rerank_dim=query.rerank_dim,
                             rerank_k=query.rerank_k, target_recall=query.target_recall,
                             budget_mflops=query.budget_mflops)
    # JSON has no infinity: a padding slot (id -1) gets the score null.
    results = [Hits(ids=ids, scores=[s if i >= 0 and math.isfinite(s) else None for i, s in zip(ids, scores)])
               for ids, scores in zip(res.ids.tolist(), res.scores.tolist())]
    return SearchResponse(results=results, mflops=res.mflops.tolist())


@router.post("/tune", response_model=TuneResponse,
             summary="Measure recall and cost of the search settings on sample queries; keep the Pareto frontier")
async def tune(body: TuneRequest, request: Request, name: str = IndexName, store: Store = Depends(get_store)):
    collection = store.get(name)
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
