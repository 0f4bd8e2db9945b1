"""Every GatewayService RPC over Connect (JSON and binary) and gRPC-Web, by the gRPC servicer's
own methods: one servicer, two front doors.

For each RPC of the service descriptor the Connect app gets a function that does what the gRPC
interceptor chain does around the same servicer method — log one line, map every error
(`kit.connect.connect_error`: the error interceptor's mapping, details included), drain streams
on shutdown, authenticate (`kit.connect.authenticate`: the auth interceptor's code) — and then
calls the method with a context that answers what the servicer asks of one (the time left).
A new RPC in the proto is served here without a line of code.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, cast

from connectrpc.request import RequestContext

from gateway.servicer import GatewayServicer
from nexus.gateway.v1 import gateway_pb2
from nexus.gateway.v1.gateway_connect import GatewayService, GatewayServiceASGIApplication
from nexus.kit import auth, connect
from nexus.kit.http import ASGIApp, Authenticator, StreamDrain

log = logging.getLogger("nexus.rpc")

SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]


class ConnectContext:
    """What a servicer method reads of its gRPC context, from a Connect request: the time left,
    the peer (in gRPC's `ipv4:host:port` form) and the metadata (the request's headers)."""

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._ctx = ctx

    def time_remaining(self) -> float | None:
        remaining_ms = self._ctx.timeout_ms
        return None if remaining_ms is None else max(remaining_ms, 0.0) / 1000

    def peer(self) -> str:
        address = self._ctx.client_address or ""
        if not address:
            return ""
        host = address.rsplit(":", 1)[0]
        return f"ipv6:{address}" if ":" in host.strip("[]") else f"ipv4:{address}"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple((key.lower(), value) for key, value in self._ctx.request_headers.items())


def snake_case(name: str) -> str:
    """`CreateStreamTicket` → `create_stream_ticket`: the generated Connect stubs' method names."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Served:
    """The gateway as the Connect stubs see it (`GatewayService`): one attribute per RPC."""


def log_call(method: str, started: float, code: str, protocol: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    principal = auth.optional_caller()
    log.info(
        "rpc",
        extra={
            "rpc": {
                "service": "gateway",
                "method": method,
                "code": code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "caller": principal.subject if principal else None,
                "protocol": protocol,
            }
        },
    )


def _protocol(ctx: RequestContext[Any, Any]) -> str:
    content_type = ctx.request_headers.get("content-type", "")
    return "grpc-web" if content_type.startswith("application/grpc-web") else "connect"


class ConnectFrontDoor:
    def __init__(
        self,
        servicer: GatewayServicer,
        authenticator: Authenticator,
        public: Collection[str],
        domain: str,
        drain: StreamDrain,
    ) -> None:
        self._servicer = servicer
        self._authenticator = authenticator
        self._public = frozenset(public)
        self._domain = domain
        self._drain = drain

    def _unary(self, method: str, behavior: Callable[[Any, Any], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        public = method in self._public

        async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
            started, code = time.perf_counter(), "OK"
            try:
                await connect.authenticate(self._authenticator, ctx.request_headers, public=public)
                return await behavior(request, ConnectContext(ctx))
            except Exception as exc:
                error = connect.connect_error(exc, self._domain)
                code = error.code.name
                raise error from None
            finally:
                log_call(method, started, code, _protocol(ctx))

        return call

    def _stream(
        self, method: str, behavior: Callable[[Any, Any], AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        public = method in self._public

        async def call(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
            started, code = time.perf_counter(), "OK"
            try:
                with self._drain.tracked():
                    await connect.authenticate(self._authenticator, ctx.request_headers, public=public)
                    async for item in behavior(request, ConnectContext(ctx)):
                        yield item
            except Exception as exc:
                error = connect.connect_error(exc, self._domain)
                code = error.code.name
                raise error from None
            except BaseException:
                code = "CANCELLED"
                raise
            finally:
                log_call(method, started, code, _protocol(ctx))

        return call

    def service(self) -> GatewayService:
        served = _Served()
        for method in SERVICE.methods:
            full_name = f"/{SERVICE.full_name}/{method.name}"
            behavior = getattr(self._servicer, method.name)
            wrapped = self._stream(full_name, behavior) if method.server_streaming else self._unary(full_name, behavior)
            setattr(served, snake_case(method.name), wrapped)
        return cast(GatewayService, served)

    def app(self, read_max_bytes: int) -> ASGIApp:
        return cast(
            ASGIApp,
            GatewayServiceASGIApplication(
                self.service(), read_max_bytes=read_max_bytes, codecs=connect.codecs(self._domain)
            ),
        )
