"""The few HTTP pieces the routes beside Connect need, on plain ASGI: the request, answers in
Connect's error JSON, CORS, security headers and the request log (one line per request: method,
route, status, duration, caller; never the query string, which may hold a stream ticket)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from nexus.kit import auth, connect
from nexus.kit.http import Receive, Scope, Send

log = logging.getLogger("nexus.http")

Headers = list[tuple[bytes, bytes]]

# Every answer: no Referer leaves the console (an events URL carries a ticket), no sniffing.
SECURITY_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# Headers a browser page on another origin may send and read (Connect, gRPC-Web, SSE resume).
CORS_ALLOW_HEADERS = (
    b"authorization, content-type, connect-protocol-version, connect-timeout-ms, grpc-timeout, "
    b"x-grpc-web, x-user-agent, last-event-id, a2a-version, a2a-extensions, nexus-after-seq"
)
CORS_EXPOSE_HEADERS = b"grpc-status, grpc-message, grpc-status-details-bin, content-disposition"


@dataclass
class Request:
    scope: Scope
    receive: Receive
    send: Send
    started: float = field(default_factory=time.perf_counter)
    # The route as logged: a template with the ids, never the query string.
    route: str = ""
    status: int = 0

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        return str(self.scope.get("path", "/"))

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.scope.get("headers", ()):
            if key.lower() == wanted:
                return bytes(value).decode("latin-1")
        return None

    def query(self) -> dict[str, str]:
        raw = bytes(self.scope.get("query_string", b"")).decode("latin-1")
        return dict(parse_qsl(raw, keep_blank_values=True))

    async def start(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": [*headers, *SECURITY_HEADERS]})

    async def body(self, data: bytes, *, more: bool = False) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def answer(
        self, status: int, content_type: bytes, data: bytes, extra: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        await self.start(
            status, [(b"content-type", content_type), (b"content-length", str(len(data)).encode()), *extra]
        )
        await self.body(data)

    async def fail(self, exc: BaseException, domain: str) -> None:
        """The error as the Connect RPCs answer it: Connect's error JSON and its HTTP status."""
        error = connect.connect_error(exc, domain)
        await self.answer(connect.http_status(error), b"application/json", connect.error_body(error))

    def logged(self) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        principal = auth.optional_caller()
        log.info(
            "http",
            extra={
                "fields": {
                    "service": "gateway",
                    "method": self.method,
                    "route": self.route or "unrouted",
                    "status": self.status,
                    "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
                    "caller": principal.subject if principal else None,
                }
            },
        )


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class Cors:
    """Off unless origins are configured (NEXUS_CORS_ORIGINS); `*` allows any origin. Tokens
    travel in the Authorization header, never in cookies, so no credentials mode is offered."""

    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origins)

    def allowed(self, origin: str | None) -> bytes | None:
        if origin is None or not self._origins:
            return None
        if "*" in self._origins:
            return b"*"
        return origin.encode("latin-1") if origin.rstrip("/") in self._origins else None

    def headers(self, origin: str | None) -> Headers:
        allowed = self.allowed(origin)
        if allowed is None:
            return []
        return [
            (b"access-control-allow-origin", allowed),
            (b"access-control-expose-headers", CORS_EXPOSE_HEADERS),
            (b"vary", b"origin"),
        ]

    def preflight(self, origin: str | None) -> Headers | None:
        """The answer headers of an OPTIONS preflight from an allowed origin, else None."""
        allowed = self.headers(origin)
        if not allowed:
            return None
        return [
            *allowed,
            (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-allow-headers", CORS_ALLOW_HEADERS),
            (b"access-control-max-age", b"7200"),
        ]
