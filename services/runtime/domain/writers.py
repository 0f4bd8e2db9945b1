"""Who may write a task's workspace (plan, context, memory, artifacts). Pure rules.

- **Plan** (DESIGN §3, issue 5): the lease holder, or the owner while no worker holds the task;
  never after the task ended (a `plan` event after the terminal status event would break the
  rule that the terminal status event is a task's last event).
- **Context**: the owner or the lease holder, until the task ends.
- **Memory** and **artifacts**: the lease holder, and the owner at any time (a memory is
  usually written when the work is done; an owner may attach files to a finished task).

A worker always names its lease, and must hold it live; anyone else's call is
FAILED_PRECONDITION, as for appends. Visibility (NOT_FOUND for another user's task) is checked
before any of this.
"""

from __future__ import annotations

from nexus.kit.errors import FailedPrecondition
from services.runtime.domain import leases
from services.runtime.domain.states import TERMINAL, Status
from services.runtime.domain.tasks import Actor


def _ended(state: leases.LeaseState) -> FailedPrecondition:
    return FailedPrecondition(f"the task has already ended ({state.status})", reason="TASK_ENDED")


def _holder(actor: Actor, state: leases.LeaseState) -> None:
    assert actor.worker is not None
    if state.status in TERMINAL:
        raise _ended(state)
    leases.require_holder(state, actor.lease_id or "", actor.worker)


def held(state: leases.LeaseState) -> bool:
    """A worker holds the task: it runs and its lease has not expired."""
    return state.status == Status.RUNNING and state.live


def require_plan_writer(actor: Actor, state: leases.LeaseState) -> None:
    if actor.is_worker:
        _holder(actor, state)
        return
    if state.status in TERMINAL:
        raise _ended(state)
    if held(state):
        raise FailedPrecondition(
            "a worker holds the task; only it may change the plan until it lets go", reason="LEASE_HELD"
        )


def require_context_writer(actor: Actor, state: leases.LeaseState) -> None:
    if actor.is_worker:
        _holder(actor, state)
    elif state.status in TERMINAL:
        raise _ended(state)


def require_owner_or_holder(actor: Actor, state: leases.LeaseState) -> None:
    """Memory and artifacts."""
    if actor.is_worker:
        _holder(actor, state)
