"""The interceptor chain every Nexus server runs: request log → errors → admission → auth.
(Admission, kit/admission.py, refuses calls on overload and shutdown and ends streams on shutdown.)

Each interceptor wraps a method's behaviour once and caches the wrapped handler by method name,
so the per-call cost is one dict lookup per interceptor. Streaming handlers must be async
generators; they are wrapped the same way, so errors, auth and logs cover streams too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import Message

from nexus.kit import auth
from nexus.kit.errors import (
    InvalidArgument,
    NexusError,
    ResourceExhausted,
    Unauthenticated,
    classify,
    to_status,
    upstream_status,
)
from nexus.kit.revocations import RevokedSessions
from nexus.kit.tokens import TokenVerifier
from nexus.kit.wire import undecodable

log = logging.getLogger("nexus.rpc")

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


class _Wrapping(grpc.aio.ServerInterceptor):
    """Base: subclasses say how to wrap a unary-response and a streaming-response behaviour."""

    def __init__(self) -> None:
        self._cache: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped = self.wrap_handler(method, handler)
        self._cache[method] = wrapped
        return wrapped

    def wrap_handler(self, method: str, handler: Any) -> Handler:
        deserializer = self.wrap_deserializer(handler.request_deserializer)
        serializer = self.wrap_serializer(handler.response_serializer)
        common = {"request_deserializer": deserializer, "response_serializer": serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(self.wrap_unary(method, handler.unary_unary), **common)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(self.wrap_unary(method, handler.stream_unary), **common)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(self._wrap_streaming(method, handler.unary_stream), **common)
        return grpc.stream_stream_rpc_method_handler(self._wrap_streaming(method, handler.stream_stream), **common)

    def _wrap_streaming(self, method: str, behavior: Any) -> Any:
        # A streaming behaviour is an async generator, or (health's Watch) a coroutine that
        # writes with context.write(); the latter is wrapped like a unary call.
        if inspect.isasyncgenfunction(behavior):
            return self.wrap_stream(method, behavior)
        return self.wrap_writer_stream(method, behavior)

    def wrap_writer_stream(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        return self.wrap_unary(method, behavior)

    def wrap_deserializer(self, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        return deserializer

    def wrap_serializer(self, serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
        return serializer

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        return behavior

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        return behavior


class RequestLogInterceptor(_Wrapping):
    """One structured line per call: method, code, duration, caller. Never a payload or token."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def _emit(self, method: str, context: grpc.aio.ServicerContext[Any, Any], started: float, code: str) -> None:
        principal = auth.optional_caller()
        log.info(
            "rpc",
            extra={
                "rpc": {
                    "service": self._service,
                    "method": method,
                    "code": code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "caller": principal.subject if principal else None,
                }
            },
        )

    @staticmethod
    def _code(context: grpc.aio.ServicerContext[Any, Any], failed: BaseException | None) -> str:
        code: object = context.code()
        if isinstance(code, grpc.StatusCode):
            return code.name
        if isinstance(failed, asyncio.CancelledError):
            return "CANCELLED"
        return "UNKNOWN" if failed else "OK"

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def logged(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            failed: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                # Building the entry costs more than the rest of the chain: skip it when unlogged.
                if log.isEnabledFor(logging.INFO):
                    self._emit(method, context, started, self._code(context, failed))

        return logged

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def logged(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            failed: BaseException | None = None
            try:
                async for item in behavior(request, context):
                    yield item
            except BaseException as exc:
                failed = exc
                raise
            finally:
                # Building the entry costs more than the rest of the chain: skip it when unlogged.
                if log.isEnabledFor(logging.INFO):
                    self._emit(method, context, started, self._code(context, failed))

        return logged


_UNDECODABLE = object()


class ErrorInterceptor(_Wrapping):
    """Turns every exception into a canonical status with ErrorInfo and BadRequest details.

    It also owns requests that do not decode: the runtime would answer INTERNAL, so the
    deserializer returns a marker and the call fails with INVALID_ARGUMENT naming the field.

    And responses too large to send: the transport would fail them with a bare RESOURCE_EXHAUSTED
    after the handler returned, so the client got no details and the request log said OK. Each
    response is encoded here instead (the serializer passes the bytes on), and one over the
    message limit fails with RESOURCE_EXHAUSTED (RESPONSE_TOO_LARGE) like any other error.
    """

    def __init__(self, domain: str, *, max_message_bytes: int) -> None:
        super().__init__()
        self._domain = domain
        self._max_message_bytes = max_message_bytes

    def wrap_serializer(self, serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
        if serializer is None:
            return None

        def encoded(response: Any) -> bytes:
            return response if type(response) is bytes else serializer(response)

        return encoded

    def _encode(self, method: str, response: Any) -> Any:
        if not isinstance(response, Message):
            return response  # a writer-style stream's None, or a handler's own bytes
        data = response.SerializeToString()
        if len(data) > self._max_message_bytes:
            log.warning(
                "response too large",
                extra={"fields": {"method": method, "bytes": len(data), "max_message_bytes": self._max_message_bytes}},
            )
            raise ResourceExhausted(
                f"the response ({len(data)} bytes) is larger than the message limit ({self._max_message_bytes} bytes)",
                reason="RESPONSE_TOO_LARGE",
                metadata={"response_bytes": str(len(data)), "max_message_bytes": str(self._max_message_bytes)},
            )
        return data

    def wrap_deserializer(self, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        if deserializer is None:
            return None
        message_type = getattr(deserializer, "__self__", None)

        def safe(data: bytes) -> Any:
            try:
                return deserializer(data)
            except Exception:
                return (_UNDECODABLE, message_type, data)

        return safe

    @staticmethod
    def _reject(marker: tuple[Any, Any, bytes]) -> InvalidArgument:
        _, message_type, data = marker
        descriptor = message_type.DESCRIPTOR if message_type is not None and issubclass(message_type, Message) else None
        return undecodable(descriptor, data)

    def _check(self, request: Any) -> Any:
        if isinstance(request, Message):
            return request  # the common case, checked first: hasattr on a message is slow
        if type(request) is tuple and request and request[0] is _UNDECODABLE:
            raise self._reject(request)
        if hasattr(request, "__aiter__"):
            return self._checked_stream(request)
        return request

    async def _checked_stream(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item in requests:
            if type(item) is tuple and item and item[0] is _UNDECODABLE:
                raise self._reject(item)
            yield item

    async def _abort(self, context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
        mapped = classify(exc)
        if isinstance(mapped, NexusError):
            status = to_status(mapped, self._domain)
            await context.abort(status.code, status.details, status.trailing_metadata)
        else:
            code, details, trailing = upstream_status(mapped)
            await context.abort(code, details, trailing)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def mapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return self._encode(method, await behavior(self._check(request), context))
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._abort(context, exc)

        return mapped

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def mapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                async for item in behavior(self._check(request), context):
                    yield self._encode(method, item)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._abort(context, exc)

        return mapped


class AuthInterceptor(_Wrapping):
    """Verifies `authorization: Bearer <jwt>` and publishes the principal via `auth.caller()`.

    Methods in `public` (sign-in, health, reflection…) run without a token; a token sent to them
    anyway is still verified, so a bad one is never silently ignored. A token whose sign-in was
    ended (`revoked`, followed from the user service) is refused like an invalid one.
    """

    def __init__(
        self, verifier: TokenVerifier, public: Collection[str], revoked: RevokedSessions | None = None
    ) -> None:
        super().__init__()
        self._verifier = verifier
        self._revoked = revoked
        # Entries ending in "/" or "." are prefixes: a whole service or package is public.
        self._public = frozenset(p for p in public if not p.endswith(("/", ".")))
        self._public_prefixes = tuple(p for p in public if p.endswith(("/", ".")))

    def _is_public(self, method: str) -> bool:
        return method in self._public or method.startswith(self._public_prefixes)

    async def authenticate(self, metadata: Any, *, public: bool) -> None:
        """Publishes the caller of a call with these metadata (key-value pairs) as `auth.caller()`;
        UNAUTHENTICATED when a method that needs a token has none. A service's HTTP front door
        authenticates through here too (`kit.http.Authenticator`), so both ports check a token
        the same way."""
        token = auth.token_from_metadata(metadata)
        if token:
            # A client sends the same token on every call: a cache hit needs no await.
            principal = self._verifier.cached(token)
            if principal is None:
                auth.set_caller(None)
                principal = await self._verifier.verify(token)
            if self._revoked is not None and self._revoked.revoked(principal):
                auth.set_caller(None)
                raise Unauthenticated("this sign-in was ended; sign in again", reason="TOKEN_REVOKED")
            auth.set_caller(principal)
            return
        auth.set_caller(None)
        if not public:
            auth.caller()  # raises UNAUTHENTICATED with the standard message

    async def _authenticate(self, public: bool, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await self.authenticate(context.invocation_metadata(), public=public)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        public = self._is_public(method)

        async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self._authenticate(public, context)
            return await behavior(request, context)

        return authenticated

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        public = self._is_public(method)

        async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            await self._authenticate(public, context)
            async for item in behavior(request, context):
                yield item

        return authenticated
