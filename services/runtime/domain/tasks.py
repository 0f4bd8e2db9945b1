"""Tasks as plain values, and who may act on one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nexus.contract.steps import PlanStep
from nexus.kit.errors import FailedPrecondition, not_found
from nexus.kit.protos import etag
from services.runtime.domain import leases
from services.runtime.domain.states import TERMINAL

MAX_TITLE_CHARS = 500
EDITABLE = ("title", "is_pinned", "is_archived")


@dataclass(slots=True)
class NewTask:
    user_id: str
    agent_id: str
    team_id: str | None
    session_id: str | None
    trigger_source: str
    origin_skill_id: str | None
    title: str
    inputs: dict[str, Any]
    # Set for tasks a schedule fired: the schedule, and the due time this task is its firing of.
    schedule_id: str | None = None
    scheduled_at: datetime | None = None
    # The first plan and context variables, written in the task's own transaction.
    plan: tuple[PlanStep, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Task:
    id: str
    user_id: str
    agent_id: str
    team_id: str | None
    session_id: str | None
    trigger_source: str
    origin_skill_id: str | None
    title: str
    inputs: dict[str, Any]
    status: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    is_pinned: bool
    is_archived: bool
    last_seq: int
    version: int
    created_at: datetime
    updated_at: datetime
    last_active_at: datetime
    schedule_id: str | None = None

    @property
    def etag(self) -> str:
        return etag(self.version)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which of a user's tasks a sidebar list shows."""

    user_id: str
    statuses: tuple[str, ...] = ()
    archived: bool | None = False  # None: archived or not
    agent_id: str | None = None
    session_id: str | None = None


@dataclass(slots=True)
class ClaimedTask:
    task: Task
    lease_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on a task: its owner (a user token), or a worker (a service token with the
    `runtime.worker` scope) that names the lease it holds."""

    user_id: str | None = None
    worker: str | None = None
    lease_id: str | None = None

    @property
    def is_worker(self) -> bool:
        return self.worker is not None

    def can_see(self, owner: str) -> bool:
        """Workers drive any task they are handed; a user sees only their own."""
        return self.is_worker or self.user_id == owner


def require_visible(actor: Actor, owner: str | None) -> None:
    """Another user's task answers exactly like a missing one."""
    if owner is None or not actor.can_see(owner):
        raise not_found("task")


def require_writable(actor: Actor, state: leases.LeaseState) -> None:
    """Appending needs a task that has not ended; a worker must also hold its lease."""
    if state.status in TERMINAL:
        raise FailedPrecondition(f"the task has already ended ({state.status})", reason="TASK_ENDED")
    if actor.worker is not None:
        leases.require_holder(state, actor.lease_id or "", actor.worker)
