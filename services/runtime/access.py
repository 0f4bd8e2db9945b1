"""Who may call what: owners with user tokens, workers with `runtime.worker` service tokens."""

from __future__ import annotations

from nexus.kit.auth import caller
from services.runtime.domain.scopes import WORKER_SCOPE
from services.runtime.domain.tasks import Actor


def owner() -> Actor:
    """The calling user; service tokens are refused (PERMISSION_DENIED)."""
    return Actor(user_id=caller().user_id)


def user() -> str:
    """The calling user's id, for calls that only users make (their sessions, schedules,
    searches across their tasks); service tokens are refused (PERMISSION_DENIED)."""
    return owner().user_id or ""


def worker(lease_id: str | None = None) -> Actor:
    """The calling worker; it needs the `runtime.worker` scope."""
    principal = caller()
    principal.require_scope(WORKER_SCOPE)
    return Actor(worker=principal.subject, lease_id=lease_id)


def anyone(lease_id: str | None = None) -> Actor:
    """An owner (user token) or a worker (service token with the worker scope)."""
    principal = caller()
    if principal.is_user:
        return Actor(user_id=principal.subject)
    principal.require_user_or_scope(WORKER_SCOPE)
    return Actor(worker=principal.subject, lease_id=lease_id)
