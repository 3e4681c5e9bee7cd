"""The front of the service, as plain ASGI: every request passes `Gate` before anything else runs.

The gate checks the API key from the headers alone (so a request without the key is a 401 before its
body is read or parsed), then reads the body under the size limit (413) and the body timeout (408), and
hands it on. Searches are the requests a service answers most, and FastAPI's per-request machinery
(routing, dependency solving, response models) costs several times the search itself, so the gate
answers ``POST /indexes/{name}/search`` itself with `answer_search` — the same function the documented
route calls, so /docs describes what this serves — and records its metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import math
import re
import time
from functools import partial

import numpy as np
from .batcher import MAX_BATCH
from .errors import ApiError, BodyTooLarge, Invalid, Timeout, Unauthorized, UnsupportedMediaType
from .metrics import route_template
from .npy import NPY, NPZ, npy_at
from .search_body import decode_json, decode_query_string

try:  # the server extra brings orjson; the standard library is the fallback
    import orjson

    def dumps(obj) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover
    import json

    def dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

log = logging.getLogger("adanns.server")

_SEARCH = re.compile(r"^/indexes/([^/]+)/search$")
SEARCH_ROUTE = "/indexes/{name}/search"
_DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
# Results larger than this many slots are encoded on the worker pool, so the event loop never stalls.
_ENCODE_INLINE_SLOTS = 20_000


def check_api_key(settings, authorizations: list[str]) -> None:
    """401 unless exactly one ``Authorization: Bearer <key>`` header carries the key (when one is set)."""
    key = settings.api_key
    if not key:
        return
    if len(authorizations) != 1:
        raise Unauthorized("missing or wrong API key: send exactly one 'Authorization: Bearer <key>' header"
                           if authorizations else "missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = authorizations[0].partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise Unauthorized("missing or wrong API key: send 'Authorization: Bearer <key>'")


async def answer_search(app, name: str, content_type: str | None, body: bytes, query_string: bytes = b"",
                        accept: str | None = None) -> tuple[bytes, bytes]:
    """Runs one search request (the key was checked by the gate); returns (body, its content type), or
    raises ApiError. JSON bodies carry queries and knobs; an x-npy body is a float (n, d) batch whose knobs
    come in the query string. ``Accept: application/x-npz`` answers arrays (ids, scores, mflops)."""
    settings = app.state.settings
    collection = app.state.store.get(name)
    collection.require(writing=False)
    content_type = (content_type or "application/json").split(";")[0].strip().lower()
    if content_type == "application/json":
        if query_string:
            raise Invalid("a JSON search takes its knobs in the body, not the query string")
        rows, knobs = decode_json(body)
        nq = len(rows)
    elif content_type == NPY:
        knobs = decode_query_string(query_string)
        rows, end = npy_at(body, 0, "the queries")
        if end != len(body):
            raise Invalid("the queries: bytes follow the .npy array")
        if rows.dtype.kind != "f" or rows.ndim != 2:
            raise Invalid(f"the queries must be a 2-D floating-point array, got dtype {rows.dtype} shape {rows.shape}")
        nq = rows.shape[0]
    else:
        raise UnsupportedMediaType(f"unsupported content type {content_type!r}; send application/json or {NPY}")
    if nq > settings.max_queries:
        raise BodyTooLarge(f"{nq} queries in one request; the limit is {settings.max_queries}: split the batch")
    if nq * knobs.k > settings.max_result_slots:
        raise Invalid(f"{nq} queries x k = {knobs.k} asks for {nq * knobs.k} results; the limit is "
                      f"{settings.max_result_slots} per request: lower k or split the batch")
    if content_type == "application/json":
        if len({len(r) for r in rows}) != 1:
            raise Invalid("the vectors of a batch must all have the same length")
        rows = np.array(rows, dtype=np.float64)  # float64 first: overflow to float32 inf is then caught
    queries = collection.check_queries(rows)
    wants_arrays = accept is not None and NPZ in accept
    if knobs.with_payload and wants_arrays:
        raise Invalid("with_payload answers JSON (the payloads are objects): do not ask for application/x-npz")
    if knobs.filter is None and not knobs.with_payload and nq <= MAX_BATCH:
        # On a search thread, merged with the requests that wait with it and ask the same of the same index.
        res = await app.state.batcher.search(collection, queries, knobs.k, settings.search_threads, **knobs.knobs())
        encode = encode_arrays if wants_arrays else encode_results
    else:
        # Filtered searches are not merged (each request has its own filter), and batches too large to merge
        # run on the worker pool, side by side, never holding up the search threads' single queries.
        res, encode = await asyncio.get_running_loop().run_in_executor(
            app.state.pool, partial(_on_pool, collection, queries, knobs, settings.search_threads, wants_arrays))
    if res.ids.size <= _ENCODE_INLINE_SLOTS:
        payload = encode(res)
    else:
        payload = await asyncio.get_running_loop().run_in_executor(app.state.pool, encode, res)
    return payload, (NPZ.encode() if wants_arrays else b"application/json")


def _on_pool(collection, queries, knobs, threads: int, wants_arrays: bool):
    """(result, its encoder) of a search on the worker pool: filtered, with payloads, or too large to merge."""
    if not knobs.with_payload:
        res = collection.search_checked(queries, knobs.k, threads, filter=knobs.filter, **knobs.knobs())
        return res, (encode_arrays if wants_arrays else encode_results)
    res, payloads = collection.search_with_payload(queries, knobs.k, threads, filter=knobs.filter, **knobs.knobs())
    return res, partial(encode_results, payloads=payloads)


def encode_arrays(res) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, ids=res.ids, scores=res.scores, mflops=res.mflops)
    return buf.getvalue()


def encode_results(res, payloads=None) -> bytes:
    # JSON has no infinity: a padding slot (id -1) gets the score null (stored vectors are bounded so
    # that a real hit's score is always finite).
    results = [{"ids": ids, "scores": [s if i >= 0 and math.isfinite(s) else None for i, s in zip(ids, scores)]}
               for ids, scores in zip(res.ids.tolist(), res.scores.tolist())]
    if payloads is not None:
        for hits, rows in zip(results, payloads):
            hits["payloads"] = rows
    return dumps({"results": results, "mflops": res.mflops.tolist()})


class Gate:
    """The outermost ASGI application: the key, the body limit and timeout for every request, the search
    route itself; everything else (and the lifespan) goes on to the FastAPI app with the body read."""

    def __init__(self, app):
        self.app = app
        self.settings = app.state.settings
        metrics = app.state.metrics
        self._search_latency = metrics.latency.labels(SEARCH_ROUTE, "POST")
        self._counters = {}  # (route, method, status) -> labelled counter (labelling costs more than counting)
        self._metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        path, method = scope["path"], scope["method"]
        search = _SEARCH.match(path) if method == "POST" else None
        content_type, accept, authorizations = None, None, []
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorizations.append(value.decode("latin-1"))
            elif key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"accept":
                accept = value.decode("latin-1")
        media = b"application/json"
        try:
            if path != "/healthz" and not (self.settings.public_docs and path in _DOCS):
                check_api_key(self.settings, authorizations)
            body = await _read_body(scope, receive, self.settings.max_body_bytes, self.settings.body_timeout)
            if search is None:
                return await self.app(scope, _replay(body, receive), send)
            (payload, media), status = await answer_search(self.app, search.group(1), content_type, body,
                                                           scope.get("query_string", b""), accept), 200
        except ApiError as e:
            payload, status = dumps({"detail": e.detail}), e.status
        except Exception as e:  # never a bare 500 page: log it and answer JSON like the app does
            log.exception("unexpected error on %s %s", method, path)
            payload, status = dumps({"detail": f"internal error: {type(e).__name__}"}), 500
        extra = []
        if status == 401:
            extra = [(b"www-authenticate", b"Bearer")]
        elif status in (408, 413):
            extra = [(b"connection", b"close")]  # the rest of the body is not read
        try:
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", media),
                                    (b"content-length", str(len(payload)).encode()), *extra]})
            await send({"type": "http.response.body", "body": payload})
        finally:
            route = SEARCH_ROUTE if search else route_template(self.app, scope)
            key = (route, method, status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self._metrics.requests.labels(route, method, str(status))
            counter.inc()
            latency = self._search_latency if search else self._metrics.latency.labels(route, method)
            latency.observe(time.perf_counter() - start)


async def _read_body(scope, receive, max_bytes: int, timeout: float) -> bytes:
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > max_bytes:
            raise BodyTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    try:
        # One timer for the whole body (asyncio.timeout: no task per chunk, unlike wait_for).
        async with _deadline(timeout):
            return await _receive_all(receive, max_bytes)
    except (asyncio.TimeoutError, TimeoutError):
        raise Timeout(f"the request body was not received within {timeout:g} s") from None


async def _receive_all(receive, max_bytes: int) -> bytes:
    chunks, seen = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Invalid("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > max_bytes:  # a body streamed without a Content-Length: stop reading at the limit
            raise BodyTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        if not message.get("more_body", False):
            return b"".join(chunks) + chunk if chunks else chunk
        chunks.append(chunk)


if hasattr(asyncio, "timeout"):  # Python >= 3.11
    _deadline = asyncio.timeout
else:  # pragma: no cover
    class _deadline:
        """asyncio.timeout for Python < 3.11: cancels the waiting task when the time is up."""

        def __init__(self, seconds: float):
            self.seconds, self.expired = seconds, False

        async def __aenter__(self):
            task = asyncio.current_task()
            self.handle = asyncio.get_running_loop().call_later(self.seconds, self._expire, task)

        def _expire(self, task):
            self.expired = True
            task.cancel()

        async def __aexit__(self, kind, exc, tb):
            self.handle.cancel()
            if self.expired and kind is asyncio.CancelledError:
                raise asyncio.TimeoutError


def _replay(body: bytes, receive):
    """A receive callable that yields the body already read, then whatever the connection says next."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
