"""Search an index; a query shorter than the index dimension is a Matryoshka prefix.

Requests are answered by `search_path.SearchFastPath` before they reach this route; the route
documents the endpoint in the OpenAPI schema and answers the same way (`answer_search`) if the
fast path is ever bypassed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..deps import IndexName
from ..schemas import Error, SearchRequest, SearchResponse
from ..search_path import answer_search

router = APIRouter(prefix="/indexes/{name}", tags=["search"],
                   responses={401: {"model": Error}, 404: {"model": Error}, 413: {"model": Error},
                              422: {"model": Error}})


@router.post("/search", response_model=SearchResponse,
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": SearchRequest.model_json_schema()}}, "required": True}})
async def search(request: Request, name: str = IndexName) -> Response:
    body = await answer_search(request.app, name, request.headers.get("authorization"),
                               request.headers.get("content-type", "application/json"), await request.body())
    return Response(body, media_type="application/json")
