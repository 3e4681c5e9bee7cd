"""Shared dependencies of the routes: the store, the worker pool, the settings, the API key check."""

from __future__ import annotations

import asyncio
import hmac
from functools import partial

from fastapi import Path, Request

from .config import Settings
from .errors import Unauthorized
from .store import NAME_PATTERN, Store

IndexName = Path(pattern=NAME_PATTERN, description="[A-Za-z0-9_-]{1,64}")


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def run_blocking(request: Request, fn, *args, **kwargs):
    """Runs native work (searches release the GIL) and fsyncs on the worker pool, off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app.state.pool, partial(fn, *args, **kwargs))


def require_api_key(request: Request) -> None:
    check_api_key(request.app.state.settings, request.headers.get("authorization"))


def check_api_key(settings: Settings, authorization: str | None) -> None:
    key = settings.api_key
    if not key:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise Unauthorized("missing or wrong API key: send 'Authorization: Bearer <key>'")
