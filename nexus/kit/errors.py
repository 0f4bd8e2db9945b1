"""Typed domain errors and the one place that turns any exception into a gRPC status.

Domain and store code raise `NexusError` subclasses. The error interceptor calls `to_status`,
which also translates database errors (by SQLSTATE) and errors from downstream gRPC calls, so no
servicer maps errors by hand.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import grpc
import psycopg
import sqlalchemy.exc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger("nexus.errors")

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class NexusError(Exception):
    """An error with a canonical code, an UPPER_SNAKE reason, and optional field violations."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
        retry_after_s: float | None = None,
        domain: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.code.name
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})
        # Set where waiting helps (overload, shutdown, rate limits): sent as a RetryInfo detail.
        self.retry_after_s = retry_after_s
        # The ErrorInfo domain when it is not the serving service's own: an error a protocol
        # defines (A2A's TASK_NOT_FOUND is domain `a2a-protocol.org`) names that protocol.
        self.domain = domain


class InvalidArgument(NexusError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(NexusError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(NexusError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(NexusError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(NexusError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(NexusError):
    code = grpc.StatusCode.OUT_OF_RANGE


class PermissionDenied(NexusError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(NexusError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(NexusError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(NexusError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(NexusError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(NexusError):
    code = grpc.StatusCode.INTERNAL


class DataLoss(NexusError):
    """Stored data is corrupt or was tampered with (e.g. a ciphertext fails authentication)."""

    code = grpc.StatusCode.DATA_LOSS


def invalid(field: str, description: str, *, reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
    """One bad field: the common case of a BadRequest with a single violation."""
    return InvalidArgument(f"{field}: {description}", reason=reason, violations=[FieldViolation(field, description)])


def not_found(kind: str) -> NotFound:
    """The one answer for a missing resource, and for one the caller may not see (DESIGN §2): the
    two must not differ. `kind` is one word (`connection`): reason CONNECTION_NOT_FOUND. The id
    is never echoed."""
    return NotFound(f"{kind} not found", reason=f"{kind.upper()}_NOT_FOUND")


@dataclass(frozen=True)
class _Upstream:
    code: grpc.StatusCode
    details: str
    status_details: bytes | None


# SQLSTATE class or code → (status code, reason, message). Messages never echo values: a value
# may be a secret.
_SQLSTATE: dict[str, tuple[type[NexusError], str, str]] = {
    "23505": (AlreadyExists, "ALREADY_EXISTS", "a resource with these values already exists"),
    "23503": (FailedPrecondition, "REFERENCE_VIOLATION", "a referenced resource does not exist or is in use"),
    "23502": (InvalidArgument, "MISSING_VALUE", "a required value is missing"),
    "23514": (InvalidArgument, "CHECK_VIOLATION", "a value is outside its allowed range"),
    "23P01": (Aborted, "CONFLICT", "the change conflicts with another resource"),
    "22": (InvalidArgument, "INVALID_VALUE", "a value cannot be stored as given"),
    "40001": (Aborted, "CONCURRENT_UPDATE", "a concurrent update interfered; retry"),
    "40P01": (Aborted, "CONCURRENT_UPDATE", "a concurrent update interfered; retry"),
    "55P03": (Aborted, "LOCKED", "the resource is locked by another operation; retry"),
    "57014": (DeadlineExceeded, "STATEMENT_TIMEOUT", "the database did not answer in time"),
    "57P01": (Unavailable, "DATABASE_UNAVAILABLE", "the database is shutting down; retry"),
    "53300": (Unavailable, "DATABASE_UNAVAILABLE", "the database has no free connections; retry"),
    "53": (ResourceExhausted, "DATABASE_EXHAUSTED", "the database is out of resources"),
    "08": (Unavailable, "DATABASE_UNAVAILABLE", "the database cannot be reached; retry"),
}


def from_database(exc: BaseException) -> NexusError | None:
    """Maps a psycopg or SQLAlchemy error to a NexusError, or None when it is not one."""
    orig: BaseException = exc
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
    elif isinstance(exc, sqlalchemy.exc.TimeoutError):
        return Unavailable("no database connection became free in time; retry", reason="DATABASE_BUSY")
    if not isinstance(orig, psycopg.Error):
        return None
    sqlstate = orig.sqlstate or ""
    entry = _SQLSTATE.get(sqlstate) or _SQLSTATE.get(sqlstate[:2])
    if entry is None:
        if isinstance(orig, psycopg.DataError):
            # Raised by the driver itself, e.g. for a NUL byte that validation should have caught.
            entry = (InvalidArgument, "INVALID_VALUE", "a value cannot be stored as given")
        elif isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
            entry = (Unavailable, "DATABASE_UNAVAILABLE", "the database cannot be reached; retry")
        else:
            return None
    cls, reason, message = entry
    metadata = {}
    constraint = getattr(orig.diag, "constraint_name", None) if sqlstate else None
    if constraint:
        metadata["constraint"] = constraint
    return cls(message, reason=reason, metadata=metadata)


def classify(exc: BaseException) -> NexusError | _Upstream:
    """Every exception becomes either a NexusError or a downstream status to pass through."""
    if isinstance(exc, NexusError):
        return exc
    if isinstance(exc, grpc.aio.AioRpcError):
        # A downstream service already produced a canonical status; pass it on unchanged.
        details = None
        for key, value in exc.trailing_metadata() or ():
            if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
                details = value
        return _Upstream(exc.code(), exc.details() or "", details)
    mapped = from_database(exc)
    if mapped is not None:
        return mapped
    log.error("unhandled exception", exc_info=exc)
    return Internal("internal error", reason="INTERNAL")


# The details travel in a trailer, and gRPC clients drop a call whose metadata exceeds 16 KiB
# (RESOURCE_EXHAUSTED instead of the real status). A request with hundreds of bad fields must still
# answer INVALID_ARGUMENT, so the violations sent are bounded in number and size.
MAX_VIOLATIONS = 50
MAX_VIOLATION_BYTES = 8 * 1024


def bounded_violations(violations: Sequence[FieldViolation]) -> list[FieldViolation]:
    """The violations to send: all of them when they fit, else a prefix and a summary entry."""
    kept: list[FieldViolation] = []
    size = 0
    for violation in violations:
        size += len(violation.field.encode()) + len(violation.description.encode()) + 8
        if len(kept) == MAX_VIOLATIONS or size > MAX_VIOLATION_BYTES:
            dropped = len(violations) - len(kept)
            return [*kept, FieldViolation("", f"and {dropped} more violations not listed")]
        kept.append(violation)
    return kept


def to_status(err: NexusError, domain: str) -> grpc.Status:
    """A `google.rpc.Status` with one ErrorInfo, one BadRequest when fields are bad, and one
    RetryInfo when the error says how long to wait."""
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=err.domain or domain, metadata=err.metadata)
    details = [_pack(info)]
    if err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in bounded_violations(err.violations)
            ]
        )
        details.append(_pack(bad))
    if err.retry_after_s is not None:
        details.append(_pack(retry_info(err.retry_after_s)))
    status = status_pb2.Status(code=err.code.value[0], message=err.message, details=details)
    return rpc_status.to_status(status)


def upstream_status(up: _Upstream) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]:
    trailing = ((STATUS_DETAILS_KEY, up.status_details),) if up.status_details else ()
    return up.code, up.details, trailing


def retry_info(delay_s: float) -> error_details_pb2.RetryInfo:
    """The RetryInfo detail: how long a client should wait before it tries again, in whole
    milliseconds and at least one (a zero delay would read as "retry at once")."""
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromMilliseconds(max(1, math.ceil(delay_s * 1000)))
    return info


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def details_of(
    error: grpc.aio.AioRpcError,
) -> tuple[error_details_pb2.ErrorInfo | None, list[FieldViolation]]:
    """Client side: the ErrorInfo and field violations carried by a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    info: error_details_pb2.ErrorInfo | None = None
    violations: list[FieldViolation] = []
    if status is None:
        return None, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return info, violations


def retry_delay_of(error: grpc.aio.AioRpcError) -> float | None:
    """Client side: the wait a failed call's RetryInfo asks for, in seconds; None without one."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds() / 1e9)
    return None


__all__ = [
    "Aborted",
    "AlreadyExists",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NexusError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "classify",
    "code_pb2",
    "details_of",
    "from_database",
    "invalid",
    "not_found",
    "retry_delay_of",
    "retry_info",
    "to_status",
]
