"""The search hot path as plain ASGI.

Searches are the requests a service answers most, and FastAPI's per-request machinery (routing,
dependency solving, response models) cost several times the search itself (~0.5 ms of CPU per
request, and every middleware layer adds more). `SearchFastPath` sits in front of the app and answers
``POST /indexes/{name}/search`` itself, with exactly the checks and answers of the documented route
(which uses the same `answer_search`, so /docs describes what this serves), the body limit and the
metrics.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time

import numpy as np
from pydantic import ValidationError

from .deps import check_api_key
from .errors import ApiError, BodyTooLarge, Invalid, describe_validation
from .schemas import SearchRequest

log = logging.getLogger("adanns.server")

_PATH = re.compile(r"^/indexes/([^/]+)/search$")


class _Route:
    """The route template the metrics label search requests with."""

    path = "/indexes/{name}/search"


async def answer_search(app, name: str, authorization: str | None, content_type: str, body: bytes) -> bytes:
    """Runs one search request; returns the JSON body, or raises ApiError (401/404/413/422)."""
    check_api_key(app.state.settings, authorization)
    collection = app.state.store.get(name)
    content_type = (content_type or "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Invalid(f"unsupported content type {content_type!r}; send application/json")
    try:
        query = SearchRequest.model_validate_json(body)
    except ValidationError as e:
        raise Invalid(describe_validation(e.errors(include_url=False))) from None
    rows = [query.vector] if query.vector is not None else query.vectors
    if len({len(r) for r in rows}) != 1:
        raise Invalid("the vectors of a batch must all have the same length")
    # float64 first: overflow to float32 inf is then caught by the check.
    queries = collection.check_queries(np.array(rows, dtype=np.float64))
    # On the worker pool (the native search releases the GIL, so searches run side by side), merged
    # with concurrent requests that ask the same of the same index.
    res = await app.state.batcher.search(collection, queries, query.k, app.state.settings.search_threads,
                                         nprobe=query.nprobe, search_dim=query.search_dim,
                                         rerank_dim=query.rerank_dim, rerank_k=query.rerank_k,
                                         target_recall=query.target_recall, budget_mflops=query.budget_mflops)
    # JSON has no infinity: a padding slot (id -1) gets the score null.
    results = [{"ids": ids, "scores": [s if i >= 0 and math.isfinite(s) else None for i, s in zip(ids, scores)]}
               for ids, scores in zip(res.ids.tolist(), res.scores.tolist())]
    return json.dumps({"results": results, "mflops": res.mflops.tolist()}, separators=(",", ":")).encode()


class SearchFastPath:
    """The outermost ASGI application: search requests are answered here; everything else (and the
    lifespan) goes to the FastAPI app. Being outermost skips every middleware layer on the hot path,
    so this does what they would: the body limit, the metrics, JSON errors."""

    def __init__(self, app):
        self.app = app
        self.max_bytes = app.state.settings.max_body_bytes
        metrics = app.state.metrics
        self._latency = metrics.latency.labels(_Route.path, "POST")
        self._requests = {}  # status -> labelled counter (labelling costs more than counting)
        self._counter = metrics.requests

    async def __call__(self, scope, receive, send):
        match = _PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        headers = dict(scope["headers"])
        extra = []
        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise BodyTooLarge(f"request body exceeds the limit of {self.max_bytes} bytes")
            body = await _read_body(receive, self.max_bytes)
            payload = await answer_search(self.app, match.group(1), _header(headers, b"authorization"),
                                          _header(headers, b"content-type"), body)
            status = 200
        except ApiError as e:
            status, payload = e.status, json.dumps({"detail": e.detail}).encode()
            if status == 401:
                extra = [(b"www-authenticate", b"Bearer")]
            elif status == 413:
                extra = [(b"connection", b"close")]  # the rest of the body is not read
        except Exception as e:  # never a bare 500 page: log it and answer JSON like the app does
            log.exception("unexpected error on POST %s", scope["path"])
            status, payload = 500, json.dumps({"detail": f"internal error: {type(e).__name__}"}).encode()
        try:
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode()), *extra]})
            await send({"type": "http.response.body", "body": payload})
        finally:
            counter = self._requests.get(status)
            if counter is None:
                counter = self._requests[status] = self._counter.labels(_Route.path, "POST", str(status))
            counter.inc()
            self._latency.observe(time.perf_counter() - start)


async def _read_body(receive, max_bytes: int) -> bytes:
    chunks, seen = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Invalid("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > max_bytes:  # a body streamed without a Content-Length: stop reading at the limit
            raise BodyTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(headers: dict, name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")
