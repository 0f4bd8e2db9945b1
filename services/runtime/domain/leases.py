"""Lease rules: how long a lease may last, and who holds one (only the holder drives a task)."""

from __future__ import annotations

from dataclasses import dataclass

from nexus.kit.errors import FailedPrecondition

MIN_LEASE_S = 0.1
MAX_LEASE_S = 3600.0
DEFAULT_LEASE_S = 30.0
MAX_CLAIM = 100
MAX_CLAIM_AGENTS = 100


def lease_seconds(requested: float) -> float | None:
    """The lease length for a requested one (0 = default), or None when out of range."""
    if requested == 0:
        return DEFAULT_LEASE_S
    if not MIN_LEASE_S <= requested <= MAX_LEASE_S:
        return None
    return requested


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A task's lease as stored; `live` is the database's `lease_expires_at > now()`."""

    status: str
    lease_id: str | None
    holder: str | None
    live: bool


def holds(state: LeaseState, lease_id: str, worker: str) -> bool:
    return state.status == "running" and state.live and state.lease_id == lease_id and state.holder == worker


def require_holder(state: LeaseState, lease_id: str, worker: str) -> None:
    """FAILED_PRECONDITION unless `worker` holds the live lease `lease_id`."""
    if not holds(state, lease_id, worker):
        raise FailedPrecondition(
            "the caller does not hold the task's lease (it expired, was released or belongs to another worker)",
            reason="LEASE_NOT_HELD",
        )
