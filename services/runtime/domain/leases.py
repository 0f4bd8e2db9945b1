"""Lease rules: who holds a task's lease (only the holder drives a task). How long a lease may
last is the contract's (`nexus.contract.leases`), shared with workers."""

from __future__ import annotations

from dataclasses import dataclass

from nexus.kit.errors import FailedPrecondition


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
