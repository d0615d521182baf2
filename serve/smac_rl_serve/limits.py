"""A bound on request bodies: larger ones get a 413 before any parsing."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """ASGI middleware answering 413 to bodies over ``n_body_bytes_max``, declared or streamed.

    The body is read (up to the bound) before the app runs, then handed to it unchanged.
    """

    def __init__(self, app: ASGIApp, n_body_bytes_max: int) -> None:
        self.app = app
        self.n_body_bytes_max = n_body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body's size, then pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.n_body_bytes_max:
            await self._refuse(send, f"{int(declared)} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.n_body_bytes_max:
                await self._refuse(send, f"over {self.n_body_bytes_max} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, value: str) -> None:
        content = json.dumps(
            {
                "detail": [
                    {"field": "body", "value": value, "expected": f"at most {self.n_body_bytes_max} bytes"}
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
