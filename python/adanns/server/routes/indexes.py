"""Index resources: list, create, describe, delete, train."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..collection import Config
from ..deps import IndexName, get_store, require_api_key, run_blocking
from ..schemas import Error, IndexInfo, IndexList, IndexSpec
from ..store import Store

router = APIRouter(prefix="/indexes", tags=["indexes"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Error}, 404: {"model": Error}, 422: {"model": Error},
                              503: {"model": Error}, 507: {"model": Error}})


@router.get("", response_model=IndexList)
async def list_indexes(store: Store = Depends(get_store)):
    states = store.states()
    return IndexList(indexes=list(states), states=states)


@router.put("/{name}", response_model=IndexInfo, responses={409: {"model": Error}},
            summary="Create an index (idempotent for the same configuration)")
async def create_index(spec: IndexSpec, request: Request, response: Response, name: str = IndexName,
                       store: Store = Depends(get_store)):
    config = Config.resolve(spec.dim, spec.metric, spec.kind, spec.params, spec.attributes)
    collection, created = await run_blocking(request, store.create, name, config)
    response.status_code = 201 if created else 200
    return collection.info()


@router.get("/{name}", response_model=IndexInfo)
async def describe_index(name: str = IndexName, store: Store = Depends(get_store)):
    return store.get(name).info()


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_index(request: Request, name: str = IndexName, store: Store = Depends(get_store)):
    await run_blocking(request, store.delete, name)
    return Response(status_code=204)


@router.post("/{name}/train", response_model=IndexInfo, summary="Train an index (any kind but flat) on what it holds now")
async def train_index(request: Request, name: str = IndexName, store: Store = Depends(get_store)):
    collection = store.get(name)
    await run_blocking(request, collection.train)
    return collection.info()
