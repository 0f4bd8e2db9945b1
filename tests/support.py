"""Helpers shared by tests: minting tokens with the real signer, and reading error details."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from nexus.kit.auth import bearer_metadata
from nexus.kit.errors import FieldViolation, details_of
from nexus.kit.tokens import TokenSigner

# The `nexus` command as a child process, with this interpreter (the console script may not be on PATH).
NEXUS_COMMAND = (sys.executable, "-m", "launch")


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
