"""Who is calling: the verified principal of the current RPC.

The auth interceptor sets it before the handler runs; handlers read it with `caller()`. Every
user-scoped query takes `caller().user_id`, never an id from the request body (DESIGN §2).
"""

from __future__ import annotations

from contextvars import ContextVar

from nexus.kit.errors import Unauthenticated
from nexus.kit.tokens import Principal

_caller: ContextVar[Principal | None] = ContextVar("nexus_caller", default=None)

BEARER_PREFIX = "bearer "


def caller() -> Principal:
    principal = _caller.get()
    if principal is None:
        raise Unauthenticated("this call needs a bearer token", reason="TOKEN_MISSING")
    return principal


def optional_caller() -> Principal | None:
    return _caller.get()


def set_caller(principal: Principal | None) -> None:
    _caller.set(principal)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that presents `token`; used to forward the caller's own token downstream."""
    return (("authorization", f"Bearer {token}"),)


def forwarded_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that calls a peer service as the current caller: the caller's own token, so the
    peer applies its own authorization to the real principal (DESIGN §2)."""
    return bearer_metadata(caller().token)


def token_from_metadata(metadata: object) -> str | None:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == "authorization" and isinstance(value, str):
            if value[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX:
                raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
            return value[len(BEARER_PREFIX) :].strip()
    return None
