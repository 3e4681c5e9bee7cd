"""Request body limit, as ASGI middleware: a declared Content-Length over the limit is refused at once,
and a body streamed without one is counted as it arrives, so nothing over the limit is read into memory."""

from __future__ import annotations

import json

from .errors import BodyTooLarge


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _refuse(send, self.max_bytes)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route's body read; the app's handler turns it into a 413.
                    raise BodyTooLarge(f"request body exceeds the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send, max_bytes: int) -> None:
    body = json.dumps({"detail": f"request body exceeds the limit of {max_bytes} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
