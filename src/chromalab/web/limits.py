"""The upload size limit, enforced before a byte of an oversized request is stored.

An ASGI middleware rather than a check in the endpoint: by the time an endpoint runs,
Starlette has already parsed (and spooled to disk) the whole multipart body. The check
reads Content-Length, which browsers and HTTP clients always send for form uploads;
a POST without it is refused with 411 so no body of unknown size is ever parsed.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

MEGABYTE = 1024 * 1024


def too_large_message(size_bytes: int, limit_mb: int) -> str:
    return (f"upload too large ({size_bytes / MEGABYTE:.1f} MB); this server accepts at most "
            f"{limit_mb} MB per upload (start it with a larger --max-upload-mb to raise the limit)")


class UploadLimit:
    """Answers 413 (with a one-line JSON ``detail``) to POSTs larger than ``limit_mb``."""

    def __init__(self, app: ASGIApp, limit_mb: int) -> None:
        self.app = app
        self.limit_mb = limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length_text = headers.get(b"content-length")
        if length_text is None:
            await _drain(receive, limit_bytes=0)
            await _reply(send, 411, "uploads must say their size (Content-Length header)")
            return
        try:
            length = int(length_text)
        except ValueError:
            await _reply(send, 400, "malformed Content-Length header")
            return
        if length > self.limit_mb * MEGABYTE:
            # Read and discard the body first: a browser that is still sending when the
            # connection closes reports a network error instead of showing our message.
            await _drain(receive, limit_bytes=length)
            await _reply(send, 413, too_large_message(length, self.limit_mb))
            return
        await self.app(scope, receive, send)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


class HostCheck:
    """Answers 400 to requests whose Host header is not a name of the address we listen on.

    A page on another site can point its own domain name at 127.0.0.1 (DNS rebinding) and
    then read this server's answers as same-origin; its requests still carry that domain in
    Host, so only the names this server is reached by are accepted.
    """

    def __init__(self, app: ASGIApp, host: str) -> None:
        self.app = app
        names = set(LOOPBACK_NAMES) if host in ("127.0.0.1", "localhost", "::1", "") else set()
        if host not in ("0.0.0.0", "::"):  # a wildcard bind takes any name: the user asked for it
            names.add(host)
        self.allowed = None if host in ("0.0.0.0", "::") else {n.lower() for n in names}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed:
                await _reply(send, 400, f"host {host or '(none)'!r} is not this server's address")
                return
        await self.app(scope, receive, send)


async def _drain(receive: Receive, limit_bytes: int) -> None:
    """Consume the request body without keeping it (up to what the client declared)."""
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False) or received > limit_bytes + MEGABYTE:
            return


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
