"""Connect (the connectrpc library) beside gRPC: the same errors and the same authentication.

A service served over Connect calls the very handlers its gRPC server runs. What the gRPC
interceptors do for a call, this module does for a Connect call, with the same kit code:
- `authenticate`: the `authorization` header through the gRPC server's own auth interceptor
  (`kit.http.Authenticator`), which publishes `auth.caller()`;
- `connect_error`: any exception becomes the canonical status the error interceptor would send
  (`errors.classify` and `errors.to_status`; a downstream status passes through unchanged), as a
  `ConnectError` whose details (ErrorInfo, BadRequest, …) the error JSON carries both encoded and
  decoded (`debug`), so a browser reads the violations without protobuf;
- `codecs`: JSON and binary protobuf whose decoding failures answer INVALID_ARGUMENT naming the
  field, never UNKNOWN, and never echoing the submitted value.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.errors import ConnectError, ErrorDetail
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from protobuf import Message as PyMessage
from protobuf import message_to_json_value
from protobuf.wkt import Any as PyAny

from nexus.kit.errors import FieldViolation, InvalidArgument, NexusError, classify, to_status, upstream_status
from nexus.kit.http import Authenticator
from nexus.kit.wire import undecodable
from nexus.protobuf_py.google.rpc import error_details_pb

TYPE_URL_PREFIX = "type.googleapis.com/"

# grpc.StatusCode → Connect's code (the same canonical codes; Connect spells CANCELLED with one L).
_CODE_NAMES: dict[str, Code] = {member.name: member for member in Code}
_CODE_NAMES["CANCELLED"] = Code.CANCELED
# Details the error JSON can carry decoded: every message of google/rpc/error_details.proto.
_DECODABLE: dict[str, type[PyMessage]] = {
    f"google.rpc.{name}": cls
    for name, cls in vars(error_details_pb).items()
    if isinstance(cls, type) and issubclass(cls, PyMessage) and cls is not PyMessage
}


def connect_code(code: grpc.StatusCode) -> Code:
    name: str = code.name
    return _CODE_NAMES.get(name, Code.UNKNOWN)


def _detail(packed: Any) -> ErrorDetail:
    type_name = packed.type_url.removeprefix(TYPE_URL_PREFIX)
    decodable = _DECODABLE.get(type_name)
    if decodable is not None:
        try:
            return ErrorDetail(decodable.from_binary(packed.value))
        except Exception:  # a detail that does not decode still travels, encoded
            pass
    return ErrorDetail(PyAny(type_url=packed.type_url, value=packed.value))


def _from_status(code: grpc.StatusCode, message: str, details: bytes | None) -> ConnectError:
    packed: list[Any] = []
    if details:
        status = status_pb2.Status.FromString(details)
        packed = list(status.details)
    return ConnectError(connect_code(code), message, [_detail(d) for d in packed])


def connect_error(exc: BaseException, domain: str) -> ConnectError:
    """The Connect form of the status the gRPC error interceptor sends for `exc`."""
    if isinstance(exc, ConnectError):
        return exc
    mapped = classify(exc)
    if isinstance(mapped, NexusError):
        status = to_status(mapped, domain)
        trailing = dict(status.trailing_metadata)
        details = trailing.get("grpc-status-details-bin")
        return _from_status(status.code, status.details, details if isinstance(details, bytes) else None)
    code, message, trailing_pairs = upstream_status(mapped)
    return _from_status(code, message, dict(trailing_pairs).get("grpc-status-details-bin"))


# Connect's HTTP status for each code (the Connect protocol's table), for routes beside the RPCs
# (Server-Sent Events, downloads) that answer errors in Connect's error JSON.
_HTTP_STATUS = {
    Code.CANCELED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


def http_status(error: ConnectError) -> int:
    return _HTTP_STATUS.get(error.code, 500)


def error_json(error: ConnectError) -> dict[str, Any]:
    """Connect's error JSON: code, message, and each detail's type and bytes, and (`debug`) the
    detail decoded, as the Connect library writes it for the RPCs."""
    body: dict[str, Any] = {"code": error.code.value, "message": error.message}
    details = []
    for detail in error.details:
        entry: dict[str, Any] = {
            "type": detail.type_name,
            "value": base64.b64encode(detail.message_bytes).decode("ascii").rstrip("="),
        }
        decoded = detail.value()
        if decoded is not None:
            with contextlib.suppress(ValueError):
                entry["debug"] = message_to_json_value(decoded)
        details.append(entry)
    if details:
        body["details"] = details
    return body


def error_body(error: ConnectError) -> bytes:
    return json.dumps(error_json(error), ensure_ascii=False).encode()


async def authenticate(authenticator: Authenticator, headers: Any, *, public: bool) -> None:
    """Sets `auth.caller()` from the `authorization` header (any mapping of headers) exactly as
    the gRPC port does from its metadata: through the same interceptor instance."""
    value = headers.get("authorization")
    await authenticator.authenticate([("authorization", value)] if isinstance(value, str) else [], public=public)


# json_format names the field it failed on (its JSON or proto name), then says why with the value.
_JSON_FIELD = re.compile(r"Failed to parse (\w+) field")


def _json_field(message_class: type[Message], error: Exception) -> str:
    found = _JSON_FIELD.search(str(error))
    if not found:
        return ""
    name = found.group(1)
    descriptor = message_class.DESCRIPTOR
    field = descriptor.fields_by_camelcase_name.get(name) or descriptor.fields_by_name.get(name)
    return field.name if field is not None else ""


def _malformed(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field}: {description}" if field else description,
        reason="MALFORMED_REQUEST",
        violations=[FieldViolation(field, description)],
    )


def json_message(value: Any, message_class: type[Message]) -> Message:
    """A decoded JSON value (a request's params) as `message_class`, in proto3 JSON with unknown
    fields ignored; a value that does not fit is INVALID_ARGUMENT naming the field, never echoing
    the value. Check the value first (`validation.json_problem`): depth, size, NUL, surrogates."""
    try:
        return json_format.ParseDict(value, message_class(), ignore_unknown_fields=True)
    except Exception as exc:
        field = _json_field(message_class, exc)
        description = "is not a valid value for this field" if field else "does not fit the request"
        raise _malformed(field, description) from None


class _SafeJsonCodec:
    """Proto3 JSON, written compact; a body that does not decode is INVALID_ARGUMENT naming the
    field."""

    def __init__(self, domain: str) -> None:
        self._inner = google_protobuf_json_codec(ignore_unknown_fields=True)
        self._domain = domain

    def name(self) -> str:
        return self._inner.name()

    def encode(self, message: Any) -> bytes:
        return json_format.MessageToJson(message, indent=None, ensure_ascii=False).encode()

    def decode(self, data: bytes | bytearray, message_class: Any) -> Any:
        try:
            return self._inner.decode(data, message_class)
        except Exception as exc:
            field = _json_field(message_class, exc)
            description = "is not a valid value for this field" if field else "the request body is not valid JSON"
            raise connect_error(_malformed(field, description), self._domain) from None


class _SafeBinaryCodec:
    """Binary protobuf; invalid UTF-8 in a string names the field, as the gRPC port does."""

    def __init__(self, domain: str) -> None:
        self._inner = google_protobuf_binary_codec()
        self._domain = domain

    def name(self) -> str:
        return self._inner.name()

    def encode(self, message: Any) -> bytes:
        return self._inner.encode(message)

    def decode(self, data: bytes | bytearray, message_class: Any) -> Any:
        try:
            return self._inner.decode(data, message_class)
        except Exception:
            raise connect_error(undecodable(message_class.DESCRIPTOR, bytes(data)), self._domain) from None


def codecs(domain: str) -> list[Codec[Any, Any]]:
    """The codecs of a Connect app: binary first (the default of Connect clients), then JSON."""
    return [_SafeBinaryCodec(domain), _SafeJsonCodec(domain)]
