"""A2A's JSON-RPC binding (A2A §9), `POST /a2a/v1` (and `POST /a2a/agents/{agent_id}`, where the
tenant is that agent unless the request names it): JSON-RPC 2.0 over HTTP, streams as
Server-Sent Events, by the A2A gRPC servicer's own methods (one servicer, two bindings, the same
answers and errors: A2A §5.1).

- The envelope: a JSON object with `jsonrpc: "2.0"`, a string, integer or null `id`, a method of
  A2A 1.0 (`SendMessage`, `GetTask`… the gRPC names; 0.3's `message/send` is METHOD_NOT_FOUND)
  and its request as `params` (proto3 JSON). Batches are refused.
- Errors answer with HTTP 200 and a JSON-RPC error: A2A's codes (-32001 TaskNotFound …, -32602
  for invalid params, from the ErrorInfo reason of domain `a2a-protocol.org`), -32700/-32600/-32601
  for the envelope, -32603 for internal errors, -32000 for the other canonical errors (overload,
  shutdown…); `data` holds the status details in ProtoJSON (`@type` ErrorInfo, BadRequest,
  RetryInfo). A missing or bad token is HTTP 401 with `WWW-Authenticate: Bearer`.
- Streams (SendStreamingMessage, SubscribeToTask): errors before the first item answer as a plain
  JSON-RPC error; then each item is `data: {"jsonrpc":"2.0","id":…,"result":<StreamResponse>}`,
  a comment every 15 s keeps proxies from closing an idle stream, an error ends it as
  `event: error` with the JSON-RPC error, and a client that leaves cancels it downstream.
- The service parameters (A2A-Version, A2A-Extensions, Nexus-After-Seq) are HTTP headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import A2A_REASON_TO_ERROR, JSON_RPC_ERROR_CODE_MAP
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gateway.a2a_servicer import A2AServicer
from gateway.domain import a2a_protocol as rules
from gateway.http.connect import log_call
from gateway.http.web import Request, json_bytes
from nexus.kit import connect
from nexus.kit.errors import STATUS_DETAILS_KEY, FieldViolation, NexusError, classify, to_status, upstream_status
from nexus.kit.http import Authenticator, StreamDrain

log = logging.getLogger("nexus.http")

SERVICE = a2a.DESCRIPTOR.services_by_name["A2AService"]
HEARTBEAT_S = 15.0
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# JSON-RPC's range for implementation-defined server errors: canonical errors A2A has no name for.
SERVER_ERROR = -32000
_INTERNAL = frozenset({"INTERNAL", "UNKNOWN", "DATA_LOSS"})
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]

RequestId = str | int | None


class HttpCallContext:
    """What an A2A servicer method reads of its gRPC context, from an HTTP request: no deadline
    (HTTP sends none), the headers as metadata (the service parameters, the token)."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def time_remaining(self) -> float | None:
        return None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        headers: Any = self._request.scope.get("headers", ())
        return tuple((bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1")) for k, v in headers)


class _Refused(Exception):
    """An envelope that is not a JSON-RPC request of this server."""

    def __init__(self, code: int, message: str, request_id: RequestId = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def status_of(exc: BaseException, domain: str) -> status_pb2.Status:
    """The google.rpc.Status the gRPC port would answer for `exc` (the error interceptor's
    mapping), so both bindings fail alike."""
    mapped = classify(exc)
    if isinstance(mapped, NexusError):
        trailing: dict[str, Any] = dict(to_status(mapped, domain).trailing_metadata)
        return status_pb2.Status.FromString(trailing[STATUS_DETAILS_KEY])
    code, message, pairs = upstream_status(mapped)
    details = dict(pairs).get(STATUS_DETAILS_KEY)
    if details:
        return status_pb2.Status.FromString(details)
    return status_pb2.Status(code=code.value[0], message=message)


def _code_name(status: status_pb2.Status) -> str:
    return str(code_pb2.Code.Name(status.code)) if status.code in code_pb2.Code.values() else "UNKNOWN"


def error_object(status: status_pb2.Status) -> dict[str, Any]:
    """A JSON-RPC error object: A2A's code for an A2A error, else the nearest standard one."""
    reason = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == rules.A2A_DOMAIN:
                reason = info.reason
    a2a_error = A2A_REASON_TO_ERROR.get(reason)
    name = _code_name(status)
    if a2a_error is not None:
        code = JSON_RPC_ERROR_CODE_MAP.get(a2a_error, SERVER_ERROR)
    elif name == "INVALID_ARGUMENT":
        code = INVALID_PARAMS
    elif name in _INTERNAL:
        code = INTERNAL_ERROR
    else:
        code = SERVER_ERROR
    error: dict[str, Any] = {"code": code, "message": status.message}
    data = [json_format.MessageToDict(detail) for detail in status.details]
    if data:
        error["data"] = data
    return error


def response(request_id: RequestId, *, result: Any = None, error: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    return json_bytes(body)


def result_of(method: str, message: Message) -> Any:
    result = json_format.MessageToDict(message)
    if method == "ListTasks":
        # A2A §3.1.4: nextPageToken is always present ("" on the last page), and so are the counts.
        for key, empty in (("tasks", []), ("nextPageToken", ""), ("pageSize", 0), ("totalSize", 0)):
            result.setdefault(key, empty)
    return result


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes `limit` bytes (what is left is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def envelope(body: bytes) -> tuple[RequestId, str, dict[str, Any]]:
    """The id, method and params of a JSON-RPC request, or _Refused with the code to answer."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise _Refused(PARSE_ERROR, "the body is not valid JSON") from None
    if isinstance(parsed, list):
        raise _Refused(INVALID_REQUEST, "batch requests are not supported")
    if not isinstance(parsed, dict):
        raise _Refused(INVALID_REQUEST, "a JSON-RPC request is a JSON object")
    raw_id = parsed.get("id")
    valid_id = raw_id is None or (isinstance(raw_id, str | int) and not isinstance(raw_id, bool))
    request_id: RequestId = raw_id if valid_id and (not isinstance(raw_id, str) or len(raw_id) <= 200) else None
    if parsed.get("jsonrpc") != "2.0":
        raise _Refused(INVALID_REQUEST, "jsonrpc must be exactly '2.0'", request_id)
    if not valid_id:
        raise _Refused(INVALID_REQUEST, "id must be a string, an integer or null", request_id)
    if request_id is None and raw_id is not None:
        raise _Refused(INVALID_REQUEST, "id must be at most 200 characters", None)
    method = parsed.get("method")
    if not isinstance(method, str) or not method:
        raise _Refused(INVALID_REQUEST, "method is required (a string)", request_id)
    params = parsed.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _Refused(INVALID_PARAMS, "params must be a JSON object (the method's request)", request_id)
    return request_id, method, params


class JsonRpc:
    """`POST /a2a/v1`."""

    def __init__(
        self, servicer: A2AServicer, authenticator: Authenticator, drain: StreamDrain, domain: str, max_bytes: int
    ) -> None:
        self._servicer = servicer
        self._authenticator = authenticator
        self._drain = drain
        self._domain = domain
        self._max_bytes = max_bytes

    async def __call__(self, request: Request, agent_id: str = "") -> None:
        """One call; on an agent's own endpoint (`agent_id`) its requests name that agent."""
        started, code, method_name = time.perf_counter(), "OK", ""
        request_id: RequestId = None
        try:
            body = await read_body(request, self._max_bytes)
            if body is None:
                raise _Refused(INVALID_REQUEST, f"the request is larger than {self._max_bytes} bytes")
            request_id, method_name, params = envelope(body)
            method = SERVICE.methods_by_name.get(method_name)
            if method is None:
                raise _Refused(
                    METHOD_NOT_FOUND,
                    "no such method: this server speaks A2A 1.0 (SendMessage, SendStreamingMessage, GetTask, "
                    "ListTasks, CancelTask, SubscribeToTask, GetExtendedAgentCard, the push configs' methods)",
                    request_id,
                )
            # Decoded as proto3 JSON; the method's own checks then name each bad field (NUL, lone
            # surrogates, JSON nested too deep…), as on the gRPC port.
            bad_enums = unknown_enum_values(params, method.input_type)
            if bad_enums:
                raise rules.invalid_params(bad_enums)
            message = connect.json_message(params, getattr(a2a, method.input_type.name))
            if agent_id:
                _of_agent(message, agent_id)
            await connect.authenticate(self._authenticator, _Headers(request), public=False)
            behavior = getattr(self._servicer, method.name)
            context = HttpCallContext(request)
            if method.server_streaming:
                code = await self._stream(request, request_id, behavior(message, context))
                return
            # A blocking SendMessage waits for its turn to end: on shutdown it answers UNAVAILABLE
            # at once (a resend of the same message is safe), like a stream.
            tracked = self._drain.tracked() if method.name == "SendMessage" else contextlib.nullcontext()
            with tracked:
                result = await behavior(message, context)
            await self._answer(request, 200, response(request_id, result=result_of(method.name, result)))
        except _Refused as refused:
            code = "INVALID_ARGUMENT"
            error = {"code": refused.code, "message": refused.message}
            await self._answer(request, 200, response(refused.request_id, error=error))
        except Exception as exc:
            status = status_of(exc, self._domain)
            code = _code_name(status)
            await self._fail(request, request_id, status)
        finally:
            log_call(f"/{SERVICE.full_name}/{method_name or '?'}", started, code, "jsonrpc")

    @staticmethod
    async def _answer(request: Request, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        await request.answer(status, b"application/json", body, extra)

    async def _fail(self, request: Request, request_id: RequestId, status: status_pb2.Status) -> None:
        unauthenticated = _code_name(status) == "UNAUTHENTICATED"
        extra = [(b"www-authenticate", b'Bearer realm="nexus"')] if unauthenticated else []
        body = response(request_id, error=error_object(status))
        await self._answer(request, 401 if unauthenticated else 200, body, extra)

    async def _stream(self, request: Request, request_id: RequestId, items: AsyncGenerator[Message, None]) -> str:
        """Relays a servicer stream as SSE; returns the code it ended with (for the log line).
        A shutdown drain ends it with UNAVAILABLE (so the client resumes elsewhere)."""
        try:
            with self._drain.tracked():
                first = await anext(items)
        except StopAsyncIteration:
            first = None
        except Exception as exc:
            await items.aclose()
            status = status_of(exc, self._domain)
            await self._fail(request, request_id, status)
            return _code_name(status)
        await request.start(200, _HEADERS)
        await request.body(b": streaming\n\n", more=True)
        if first is None:
            await request.body(b"")
            return "OK"
        await request.body(_frame(request_id, first), more=True)
        try:
            with self._drain.tracked():
                return await self._relay(request, request_id, items)
        except Exception as exc:
            return await self._end_with(request, request_id, exc)

    async def _end_with(self, request: Request, request_id: RequestId, exc: Exception) -> str:
        status = status_of(exc, self._domain)
        error = response(request_id, error=error_object(status))
        await request.body(b"event: error\ndata: " + error + b"\n\n")
        return _code_name(status)

    async def _relay(self, request: Request, request_id: RequestId, items: AsyncGenerator[Message, None]) -> str:
        # The servicer's stream feeds a queue, so waiting for its next item can also notice a
        # client that left and the time for a heartbeat.
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
        done = object()

        async def pump() -> None:
            try:
                async for item in items:
                    await queue.put(item)
            except Exception as exc:
                await queue.put(exc)
                return
            await queue.put(done)

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        pumping = asyncio.create_task(pump())
        leaving = asyncio.create_task(disconnected())
        try:
            while True:
                getting = asyncio.create_task(queue.get())
                finished, _ = await asyncio.wait(
                    {getting, leaving}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                )
                if leaving in finished or not finished:
                    getting.cancel()
                    if leaving in finished:
                        return "CANCELLED"  # the finally cancels the servicer's stream
                    await request.body(b": keep-alive\n\n", more=True)
                    continue
                item = getting.result()
                if item is done:
                    await request.body(b"")
                    return "OK"
                if isinstance(item, Exception):
                    return await self._end_with(request, request_id, item)
                await request.body(_frame(request_id, item), more=True)
        finally:
            for task in (pumping, leaving):
                task.cancel()
            await asyncio.gather(pumping, leaving, return_exceptions=True)
            await items.aclose()


_JSON_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def unknown_enum_values(value: Any, descriptor: Descriptor, path: str = "") -> list[FieldViolation]:
    """The enum fields of a JSON request holding a name the enum does not define. Decoding with
    unknown fields ignored (A2A §5.7) would read such a name as the enum's zero silently: a
    `status` filter of `"TASK_STATE_DONE"` would filter nothing instead of being refused."""
    found: list[FieldViolation] = []
    if not isinstance(value, dict):
        return found
    by_name = {**{f.json_name: f for f in descriptor.fields}, **{f.name: f for f in descriptor.fields}}
    for key, item in value.items():
        field = by_name.get(key)
        if field is None:
            continue
        name = f"{path}.{field.name}" if path else field.name
        items = item if field.is_repeated and isinstance(item, list) else [item]
        for element in items:
            enum = field.enum_type
            if enum is not None and isinstance(element, str) and element not in enum.values_by_name:
                found.append(FieldViolation(name, f"is no {enum.name} value"))
            nested = field.message_type
            if nested is not None and nested.full_name not in _JSON_TYPES and not nested.GetOptions().map_entry:
                found += unknown_enum_values(element, nested, name)
    return found


def _of_agent(message: Any, agent_id: str) -> None:
    """An agent's endpoint (`POST /a2a/agents/{agent_id}`) is that agent's tenant, for clients
    that send none; a request naming another agent there is refused."""
    if not message.tenant:
        message.tenant = agent_id
    elif message.tenant != agent_id:
        raise rules.invalid_params([FieldViolation("tenant", "names another agent than this endpoint's")])


def _frame(request_id: RequestId, item: Message) -> bytes:
    return b"data: " + response(request_id, result=json_format.MessageToDict(item)) + b"\n\n"


class _Headers:
    """The request's headers as kit.connect.authenticate reads them (`get`, lowercase names)."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def get(self, name: str) -> str | None:
        return self._request.header(name)
