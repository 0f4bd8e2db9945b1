"""Sign-ins: what answers a sign-in, and the refresh tokens that keep one going.

A sign-in is one family of refresh tokens (its id is the access tokens' `sid`). Refresh tokens
are opaque, stored only as a hash, and used once: each Refresh uses up the presented token and
issues the next one in the same family. A token presented a second time means two parties hold
it (one of them a thief), so the whole family is revoked (the rotation scheme of OAuth 2.0
Security BCP §4.14).
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets

from nexus.kit.errors import PermissionDenied, Unauthenticated
from services.user.domain.records import RefreshTokenState

PREFIX = "nxr_"
# 32 random bytes: a SHA-256 of the token is as good as a slow hash, since nobody can guess it.
FORMAT = re.compile(r"nxr_[A-Za-z0-9_-]{43}")
MAX_TOKEN_LEN = 64


def new_refresh_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


class Decision(enum.Enum):
    ROTATE = "rotate"
    REVOKE_FAMILY = "revoke_family"


def decide_refresh(state: RefreshTokenState | None) -> Decision:
    """What a Refresh does with the presented token; raises when it is simply refused."""
    if state is None:
        raise invalid_refresh_token()
    if state.family_revoked:
        raise Unauthenticated("this sign-in was ended; sign in again", reason="REFRESH_TOKEN_REVOKED")
    if state.used:
        # Reuse: refused too, but first the family is revoked (and that revocation committed).
        return Decision.REVOKE_FAMILY
    if state.expired:
        raise Unauthenticated("the refresh token has expired; sign in again", reason="REFRESH_TOKEN_EXPIRED")
    if not state.user_active:
        raise user_deactivated()
    return Decision.ROTATE


def invalid_refresh_token() -> Unauthenticated:
    return Unauthenticated("the refresh token is not valid", reason="REFRESH_TOKEN_INVALID")


def reused_refresh_token() -> Unauthenticated:
    return Unauthenticated(
        "the refresh token was already used; the sign-in was revoked, sign in again",
        reason="REFRESH_TOKEN_REUSED",
    )


def invalid_credentials() -> Unauthenticated:
    """The one answer for an unknown email and for a wrong password."""
    return Unauthenticated("the email or the password is wrong", reason="INVALID_CREDENTIALS")


def user_deactivated() -> PermissionDenied:
    return PermissionDenied("the account is deactivated", reason="USER_DEACTIVATED")
