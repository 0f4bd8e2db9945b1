"""Who may touch which account's data.

A user token reaches only its own data: a request naming another user answers NOT_FOUND,
exactly like a missing one, and the query that follows takes the id from the token. A few
methods also accept a service token, only with an explicit scope.
"""

from __future__ import annotations

from nexus.kit.errors import invalid, not_found
from nexus.kit.tokens import Principal
from nexus.kit.validation import Violations

# The service token scopes of the User service (declared, with what each opens, in `scopes`).
from services.user.domain.scopes import SCOPE_ADMIN as SCOPE_ADMIN
from services.user.domain.scopes import SCOPE_AUDIT_READ as SCOPE_AUDIT_READ
from services.user.domain.scopes import SCOPE_CONNECTIONS_REVEAL as SCOPE_CONNECTIONS_REVEAL
from services.user.domain.scopes import SCOPE_CONNECTIONS_VERIFY as SCOPE_CONNECTIONS_VERIFY
from services.user.domain.scopes import SCOPE_PROFILES_READ as SCOPE_PROFILES_READ

ME = "me"


def _requested(requested: str, field: str) -> str | None:
    """The named user id, or None for the caller ("" or "me"); malformed ids are bad input."""
    if requested in ("", ME):
        return None
    v = Violations()
    user_id = v.uuid(field, requested)
    v.raise_if_any()
    return user_id


def own_user(principal: Principal, requested: str, *, kind: str, field: str = "user_id") -> str:
    """The caller's own user id; a user token naming anyone else gets NOT_FOUND."""
    named = _requested(requested, field)
    user_id = principal.user_id  # refuses service tokens
    if named is not None and named != user_id:
        raise not_found(kind)
    return user_id


def user_or_scoped_service(principal: Principal, requested: str, *, scope: str, kind: str) -> str:
    """A user acts on themself; a service with `scope` acts on the user it names."""
    if principal.is_user:
        return own_user(principal, requested, kind=kind)
    principal.require_user_or_scope(scope)
    named = _requested(requested, "user_id")
    if named is None:
        raise invalid("user_id", "is required with a service token")
    return named


def verifying_owner(principal: Principal) -> str | None:
    """Whose connection a VerifyConnection may mark: the calling user's own, or any (None) for a
    service token with the verify scope."""
    if principal.is_user:
        return principal.user_id
    principal.require_user_or_scope(SCOPE_CONNECTIONS_VERIFY)
    return None


def reveals_owner(principal: Principal, requested: str, named: str | None) -> str | None:
    """Whose reveals a caller lists: a user their own; an auditor's service token the user it
    names (`named`, already checked), or everyone's (None)."""
    if principal.is_user:
        return own_user(principal, requested, kind="user")
    principal.require_user_or_scope(SCOPE_AUDIT_READ)
    return named
