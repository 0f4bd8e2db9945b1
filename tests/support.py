"""Helpers shared by tests: minting tokens with the real signer, reading error details, and
waiting for a condition (never for a fixed time)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest

from nexus.kit.auth import bearer_metadata
from nexus.kit.errors import FieldViolation, details_of
from nexus.kit.tokens import TokenSigner

T = TypeVar("T")

# Long enough for a loaded 2-core machine; a condition that holds returns at once anyway.
WITHIN_S = 20.0
POLL_S = 0.02


async def eventually(
    condition: Callable[[], T | Awaitable[T | None] | None], what: str, *, within_s: float = WITHIN_S
) -> T:
    """Polls `condition` (a plain or an async function) until it returns a truthy value, and
    returns that value; fails naming `what` if it does not within `within_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


@dataclass
class Tokens:
    """Tokens signed by the session's real signing key (the same code the user service uses)."""

    signer: TokenSigner

    def user(self, user_id: str | None = None, *, ttl_s: int = 600) -> tuple[str, tuple[tuple[str, str], ...]]:
        """A user id and the call metadata that authenticates as that user."""
        user_id = user_id or str(uuid.uuid4())
        token = self.signer.mint(user_id, kind="user", scopes=[], ttl_s=ttl_s)
        return user_id, bearer_metadata(token)

    def service(self, *scopes: str, name: str = "test", ttl_s: int = 600) -> tuple[tuple[str, str], ...]:
        token = self.signer.mint(f"service:{name}", kind="service", scopes=scopes, ttl_s=ttl_s)
        return bearer_metadata(token)


@dataclass
class RpcFailure:
    code: grpc.StatusCode
    message: str
    reason: str | None
    domain: str | None
    violations: list[FieldViolation]

    @property
    def fields(self) -> set[str]:
        return {v.field for v in self.violations}


async def rpc_error(call: Awaitable[Any]) -> RpcFailure:
    """Awaits a call that must fail and returns its status and details."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    info, violations = details_of(err)
    return RpcFailure(
        code=err.code(),
        message=err.details() or "",
        reason=info.reason if info else None,
        domain=info.domain if info else None,
        violations=violations,
    )
