"""Partial answers, only when a search asks: ``X-Adanns-Allow-Partial: true`` lets a search leave out shards
that are unavailable (at least one must answer); the response then carries ``X-Adanns-Partial: shards 1, 3
unavailable`` naming them. Without the request header, an unavailable shard is a 503, as always.

The ASGI wrapper below puts a per-request record in a context variable; `ShardedStore.get` (called in the
request's own task) hands that request a view of the collection that fills the record in.
"""

from __future__ import annotations

import contextvars

ALLOW_HEADER = b"x-adanns-allow-partial"
MARK_HEADER = b"x-adanns-partial"
_request: contextvars.ContextVar = contextvars.ContextVar("adanns_partial", default=None)


def current() -> dict | None:
    """This request's record ({"missing": [shard, ...]}) when it allows a partial answer, else None."""
    return _request.get()


class PartialAnswers:
    """ASGI wrapper in front of the service's gate."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not any(k == ALLOW_HEADER and v.strip().lower() in (b"true", b"1")
                                              for k, v in scope["headers"]):
            return await self.app(scope, receive, send)
        record = {"missing": []}
        token = _request.set(record)

        async def marking_send(message):
            if message["type"] == "http.response.start" and record["missing"]:
                shards = ", ".join(str(s) for s in sorted(record["missing"]))
                message = {**message, "headers": [*message.get("headers", []),
                                                  (MARK_HEADER, f"shards {shards} unavailable".encode())]}
            await send(message)

        try:
            return await self.app(scope, receive, marking_send)
        finally:
            _request.reset(token)

    def __getattr__(self, name):  # Serve and the tests reach the app's state through the wrapper
        return getattr(self.app, name)
