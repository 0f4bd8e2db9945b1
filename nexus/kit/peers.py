"""Calling a peer service about a reference it owns (DESIGN §1: a reference into another space is
a plain id that the owning service checks over gRPC, as the caller)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from nexus.kit.errors import FieldViolation, InvalidArgument, invalid

T = TypeVar("T")

# A reference check is one small read; a peer slower than this is treated as unavailable.
LOOKUP_TIMEOUT_S = 5.0


async def expect_found(lookup: Awaitable[T], *, field: str, description: str, reason: str) -> T:
    """The peer's answer; its NOT_FOUND becomes INVALID_ARGUMENT naming the request field that
    holds the reference. Any other failure (UNAVAILABLE, …) passes through unchanged."""
    try:
        return await lookup
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            raise invalid(field, description, reason=reason) from None
        raise


async def check_all(*checks: Awaitable[object]) -> None:
    """Runs reference checks concurrently and reports every bad reference in one error."""
    results = await asyncio.gather(*checks, return_exceptions=True)
    violations: list[FieldViolation] = []
    reasons: list[str] = []
    for result in results:
        if isinstance(result, InvalidArgument):
            violations += result.violations
            reasons.append(result.reason)
        elif isinstance(result, BaseException):
            raise result
    if violations:
        first = violations[0]
        raise InvalidArgument(f"{first.field}: {first.description}", reason=reasons[0], violations=violations)
