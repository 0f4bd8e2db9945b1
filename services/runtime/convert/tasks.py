"""Tasks and the workers' calls on them: proto ↔ domain, and request validation (DESIGN §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import duration_pb2

from nexus.contract import leases
from nexus.kit import idempotency, validation
from nexus.kit.idempotency import RequestKey
from nexus.kit.paging import Keyset
from nexus.kit.protos import timestamp
from nexus.kit.validation import Violations
from nexus.runtime.v1 import runtime_pb2, task_pb2
from services.runtime.convert import workspace
from services.runtime.convert.shared import Edit, Listing, enum_names
from services.runtime.domain.tasks import EDITABLE, MAX_TITLE_CHARS, ClaimedTask, NewTask, Task, TaskFilter
from services.runtime.store.tasks import TaskCursor

STATUS_NAME, STATUS_NUMBER = enum_names(task_pb2.TaskStatus, "TASK_STATUS_")
SOURCE_NAME, SOURCE_NUMBER = enum_names(task_pb2.TriggerSource, "TRIGGER_SOURCE_")

MAX_NOTE_CHARS = 2000
MAX_REASON_CHARS = 200
MAX_MESSAGE_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class Creation:
    """A CreateTask request: the task, and the key of its request_id (None without one)."""

    task: NewTask
    key: RequestKey | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A ClaimTasks request: the agents to claim for, at most how many tasks, the lease length."""

    agent_ids: list[str]
    limit: int
    lease_s: float


@dataclass(frozen=True, slots=True)
class Held:
    """A worker's call on a task it holds: the task and the lease it names."""

    task_id: str
    lease_id: str


@dataclass(frozen=True, slots=True)
class Renewal:
    """A RenewLease request: the lease held, and its new length from now."""

    task_id: str
    lease_id: str
    lease_s: float


# -- outgoing -----------------------------------------------------------------------------------


def to_proto(task: Task) -> task_pb2.Task:
    message = task_pb2.Task(
        task_id=task.id,
        user_id=task.user_id,
        agent_id=task.agent_id,
        team_id=task.team_id or "",
        session_id=task.session_id or "",
        trigger_source=SOURCE_NUMBER[task.trigger_source],  # type: ignore[arg-type]
        origin_skill_id=task.origin_skill_id or "",
        title=task.title,
        status=STATUS_NUMBER[task.status],  # type: ignore[arg-type]
        is_pinned=task.is_pinned,
        is_archived=task.is_archived,
        last_seq=task.last_seq,
        create_time=timestamp(task.created_at),
        update_time=timestamp(task.updated_at),
        last_active_time=timestamp(task.last_active_at),
        etag=task.etag,
        schedule_id=task.schedule_id or "",
    )
    message.inputs.update(task.inputs)
    if task.result is not None:
        message.result.update(task.result)
    if task.error is not None:
        message.error.reason = task.error.get("reason", "")
        message.error.message = task.error.get("message", "")
        if task.error.get("details"):
            message.error.details.update(task.error["details"])
    return message


def claimed_to_proto(claimed: Sequence[ClaimedTask]) -> runtime_pb2.ClaimTasksResponse:
    return runtime_pb2.ClaimTasksResponse(
        claimed=[
            runtime_pb2.ClaimedTask(task=to_proto(c.task), lease=lease_to_proto(c.task.id, c.lease_id, c.expires_at))
            for c in claimed
        ]
    )


def claimed_size(task: Task) -> int:
    """The encoded size of the ClaimedTask a claim of `task` answers (its lease is fixed-size)."""
    placeholder = task_pb2.Lease(task_id=task.id, lease_id=task.id, expire_time=timestamp(task.updated_at))
    return runtime_pb2.ClaimedTask(task=to_proto(task), lease=placeholder).ByteSize()


def lease_to_proto(task_id: str, lease_id: str, expires_at: datetime) -> task_pb2.Lease:
    return task_pb2.Lease(task_id=task_id, lease_id=lease_id, expire_time=timestamp(expires_at))


# -- incoming -----------------------------------------------------------------------------------


def creation(request: runtime_pb2.CreateTaskRequest, user_id: str) -> Creation:
    v = Violations()
    t = request.task
    key = idempotency.key(v, request, request.request_id, principal=user_id, method="CreateTask")
    agent_id = v.slug("task.agent_id", t.agent_id)
    team_id = v.uuid("task.team_id", t.team_id, required=False)
    session_id = v.uuid("task.session_id", t.session_id, required=False)
    v.enum("task.trigger_source", t.trigger_source, task_pb2.TriggerSource.DESCRIPTOR)
    skill = v.slug("task.origin_skill_id", t.origin_skill_id, required=False)
    title = v.text("task.title", t.title, max_len=MAX_TITLE_CHARS, required=True)
    inputs = v.struct("task.inputs", t.inputs)
    plan = workspace.plan_steps(v, "initial_plan", request.initial_plan)
    variables = v.struct("initial_variables", request.initial_variables)
    v.raise_if_any()
    workspace.require_valid_plan(plan, "initial_plan")
    new = NewTask(
        user_id=user_id,
        agent_id=agent_id,
        team_id=team_id,
        session_id=session_id,
        trigger_source=SOURCE_NAME[t.trigger_source],
        origin_skill_id=skill or None,
        title=title,
        inputs=inputs,
        plan=tuple(plan),
        variables=variables,
    )
    return Creation(new, key)


def listing(request: runtime_pb2.ListTasksRequest, user_id: str) -> Listing[TaskFilter, TaskCursor]:
    v = Violations()
    for i, status in enumerate(request.statuses):
        v.enum(f"statuses[{i}]", status, task_pb2.TaskStatus.DESCRIPTOR)
    v.enum("archive_filter", request.archive_filter, runtime_pb2.ArchiveFilter.DESCRIPTOR, required=False)
    agent_id = v.slug("agent_id", request.agent_id, required=False)
    session_id = v.uuid("session_id", request.session_id, required=False)
    if request.page_size < 0:
        v.add("page_size", "must not be negative")
    v.raise_if_any()
    archived = {
        runtime_pb2.ARCHIVE_FILTER_ARCHIVED: True,
        runtime_pb2.ARCHIVE_FILTER_ALL: None,
    }.get(request.archive_filter, False)
    where = TaskFilter(
        user_id=user_id,
        statuses=tuple(sorted({STATUS_NAME[s] for s in request.statuses})),
        archived=archived,
        agent_id=agent_id or None,
        session_id=session_id,
    )
    keyset = Keyset(
        TaskCursor, "tasks", where.user_id, where.statuses, where.archived, where.agent_id, where.session_id
    )
    return Listing(where, keyset)


def edit(request: runtime_pb2.UpdateTaskRequest) -> Edit:
    paths = validation.update_paths(request.update_mask, request.task, EDITABLE)
    v = Violations()
    tid = v.uuid("task.task_id", request.task.task_id)
    etag = v.etag("task.etag", request.task.etag)
    changes: dict[str, Any] = {}
    if "title" in paths:
        changes["title"] = v.text("task.title", request.task.title, max_len=MAX_TITLE_CHARS, required=True)
    if "is_pinned" in paths:
        changes["is_pinned"] = request.task.is_pinned
    if "is_archived" in paths:
        changes["is_archived"] = request.task.is_archived
    v.raise_if_any()
    assert tid is not None
    return Edit(tid, changes, etag)


def lease_seconds(field: str, value: duration_pb2.Duration, v: Violations) -> float:
    seconds = value.seconds + value.nanos / 1e9
    checked = leases.lease_seconds(seconds)
    if checked is None:
        v.add(field, f"must be between {leases.MIN_LEASE_S} s and {leases.MAX_LEASE_S:.0f} s")
        return leases.DEFAULT_LEASE_S
    return checked


def claim(request: runtime_pb2.ClaimTasksRequest) -> Claim:
    v = Violations()
    count = len(request.agent_ids)
    if not 1 <= count <= leases.MAX_CLAIM_AGENTS:
        v.add("agent_ids", f"must name 1 to {leases.MAX_CLAIM_AGENTS} agents")
    agents = [v.slug(f"agent_ids[{i}]", a) for i, a in enumerate(request.agent_ids[: leases.MAX_CLAIM_AGENTS])]
    v.check(1 <= request.max_tasks <= leases.MAX_CLAIM, "max_tasks", f"must be 1 to {leases.MAX_CLAIM}")
    seconds = lease_seconds("lease_duration", request.lease_duration, v)
    v.raise_if_any()
    return Claim(sorted(set(agents)), request.max_tasks, seconds)


def renewal(request: runtime_pb2.RenewLeaseRequest) -> Renewal:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    lid = v.uuid("lease_id", request.lease_id)
    seconds = lease_seconds("lease_duration", request.lease_duration, v)
    v.raise_if_any()
    assert tid is not None and lid is not None
    return Renewal(tid, lid, seconds)


def held(tid_value: str, lid_value: str) -> Held:
    v = Violations()
    tid = v.uuid("task_id", tid_value)
    lid = v.uuid("lease_id", lid_value)
    v.raise_if_any()
    assert tid is not None and lid is not None
    return Held(tid, lid)


def result(request: runtime_pb2.FinishTaskRequest) -> dict[str, Any]:
    v = Violations()
    value = v.struct("result", request.result)
    v.raise_if_any()
    return value


def task_error(request: runtime_pb2.FailTaskRequest) -> dict[str, Any]:
    v = Violations()
    reason = v.text("error.reason", request.error.reason, max_len=MAX_REASON_CHARS, required=True)
    message = v.text("error.message", request.error.message, max_len=MAX_MESSAGE_CHARS)
    details = v.struct("error.details", request.error.details)
    v.raise_if_any()
    error: dict[str, Any] = {"reason": reason, "message": message}
    if details:
        error["details"] = details
    return error


def note(value: str, field: str = "reason") -> str:
    v = Violations()
    v.text(field, value, max_len=MAX_NOTE_CHARS)
    v.raise_if_any()
    return value
