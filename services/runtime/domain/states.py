"""The task state machine (DESIGN §3). Every path that changes a task's status goes through
`transition`, which also produces the status event that the same transaction appends."""

from __future__ import annotations

from enum import StrEnum

from nexus.kit.errors import FailedPrecondition
from services.runtime.domain.events import NewEvent, Role, Type


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.FINISHED, Status.FAILED, Status.CANCELLED})


class Reason(StrEnum):
    """Why a task changed status; each reason has exactly one target status."""

    CREATED = "created"
    CLAIMED = "claimed"
    LEASE_EXPIRED = "lease_expired"
    INPUT_REQUESTED = "input_requested"
    INPUT_PROVIDED = "input_provided"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


# reason → (statuses it may leave, status it enters)
_RULES: dict[Reason, tuple[frozenset[Status], Status]] = {
    Reason.CLAIMED: (frozenset({Status.QUEUED}), Status.RUNNING),
    Reason.LEASE_EXPIRED: (frozenset({Status.RUNNING}), Status.QUEUED),
    Reason.INPUT_REQUESTED: (frozenset({Status.RUNNING}), Status.WAITING_INPUT),
    Reason.INPUT_PROVIDED: (frozenset({Status.WAITING_INPUT}), Status.QUEUED),
    Reason.FINISHED: (frozenset({Status.RUNNING}), Status.FINISHED),
    Reason.FAILED: (frozenset({Status.RUNNING}), Status.FAILED),
    Reason.CANCELLED: (frozenset({Status.QUEUED, Status.RUNNING, Status.WAITING_INPUT}), Status.CANCELLED),
}

# Every legal (from, to) pair, derived from the rules; the tests walk it.
TRANSITIONS: frozenset[tuple[Status, Status]] = frozenset(
    (source, target) for sources, target in _RULES.values() for source in sources
)

_MESSAGES = {
    Reason.CREATED: "task created; waiting for a worker",
    Reason.CLAIMED: "a worker claimed the task",
    Reason.LEASE_EXPIRED: "the worker's lease expired; the task is queued again",
    Reason.INPUT_REQUESTED: "waiting for the owner's input",
    Reason.INPUT_PROVIDED: "the owner answered; the task is queued again",
    Reason.FINISHED: "the task finished",
    Reason.FAILED: "the task failed",
    Reason.CANCELLED: "the task was cancelled",
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def target_of(reason: Reason) -> Status:
    return Status.QUEUED if reason is Reason.CREATED else _RULES[reason][1]


def transition(current: str, reason: Reason) -> Status:
    """The status `reason` moves a task in `current` to; FAILED_PRECONDITION if illegal."""
    sources, target = _RULES[reason]
    if current not in sources:
        if current in TERMINAL:
            raise FailedPrecondition(f"the task has already ended ({current})", reason="TASK_ENDED")
        raise FailedPrecondition(
            f"a task that is {current} cannot become {target} ({reason})",
            reason="ILLEGAL_TRANSITION",
            metadata={"status": current, "target": str(target)},
        )
    return target


def status_event(previous: str | None, reason: Reason, note: str = "", *, worker: str | None = None) -> NewEvent:
    """The system event every state change appends, in the same transaction."""
    target = target_of(reason)
    metadata: dict[str, object] = {"status": str(target), "previous_status": previous or "", "reason": str(reason)}
    if note:
        metadata["note"] = note
    if worker:
        metadata["worker"] = worker
    return NewEvent(
        role=Role.SYSTEM,
        type=Type.STATUS,
        content_text=_MESSAGES[reason],
        render_payload=None,
        metadata=metadata,  # type: ignore[arg-type]
    )


def ends_stream(event_type: str, metadata: dict[str, object] | None) -> bool:
    """A terminal status event is always a task's last event: the stream ends after it."""
    return event_type == Type.STATUS and metadata is not None and metadata.get("status") in TERMINAL
