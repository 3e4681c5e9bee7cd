"""Shared dependencies of the routes: the store, the worker pool, the settings, the API key check."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import Path, Request

from .config import Settings
from .search_path import check_api_key
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
    """The gate (search_path.Gate) checks the key before any route runs; this repeats the check for an app
    mounted without the gate."""
    check_api_key(request.app.state.settings, request.headers.getlist("authorization"))
