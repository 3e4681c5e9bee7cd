"""The FastAPI application: ``create_app(settings)``; the lifespan opens the data directory once and
closes it (writing snapshots) on shutdown."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import adanns

from .batcher import SearchBatcher
from .config import Settings
from .errors import ApiError, describe_validation
from .metrics import Metrics, MetricsMiddleware
from .routes import health, indexes, search, vectors
from .search_path import Gate
from .store import Store

log = logging.getLogger("adanns.server")


def create_app(settings: Settings, open_store=None) -> FastAPI:
    """``open_store``: a callable returning a store-like object to serve instead of ``Store(settings.data_dir)``
    (the cluster's sharded store, adanns.cluster); called off the event loop."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if open_store is None:
            app.state.store = Store(settings.data_dir, settings.snapshot_every)
        else:
            app.state.store = await asyncio.to_thread(open_store)
        app.state.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="adanns")
        app.state.batcher = SearchBatcher(settings.search_workers)
        log.info("serving %d indexes from %s", len(app.state.store.names()), settings.data_dir)
        try:
            yield
        finally:
            app.state.batcher.close()
            app.state.pool.shutdown(wait=True)
            app.state.store.close()

    # FastAPIOffline serves the Swagger UI and ReDoc assets from its package, not a CDN: /docs works offline.
    app = FastAPIOffline(title="adanns", version=adanns.__version__, lifespan=lifespan,
                  description="Adaptive vector search on Matryoshka embeddings: send a query of any prefix "
                              "length; choose search_dim, nprobe and re-ranking per request.")
    app.state.settings = settings
    app.state.store = app.state.batcher = None
    app.state.metrics = Metrics(lambda: app.state.store, lambda: app.state.batcher)
    for router in (health.router, indexes.router, vectors.router, search.router):
        app.include_router(router)
    _install_error_handlers(app)
    # The key, the body limit and the body timeout are enforced in front of the app (see `asgi_app`).
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def asgi_app(settings: Settings, open_store=None):
    """What `adanns serve` runs: the gate (key, body limit and timeout, the search fast path) in front of
    the FastAPI app."""
    return Gate(create_app(settings, open_store))


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is a JSON body ``{"detail": ...}``; an unexpected one is logged and still JSON."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": describe_validation(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)
