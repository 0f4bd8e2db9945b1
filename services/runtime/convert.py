"""Proto ↔ domain values, and request validation (DESIGN §5): every bad field is collected and
reported at once; nothing malformed reaches the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from nexus.contract import leases
from nexus.kit import paging, validation
from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.protos import timestamp
from nexus.kit.validation import Violations
from nexus.runtime.v1 import runtime_pb2, task_pb2
from services.runtime import workspace_convert
from services.runtime.domain import events as ev
from services.runtime.domain.events import Event, NewEvent, Receipt
from services.runtime.domain.tasks import EDITABLE, MAX_TITLE_CHARS, ClaimedTask, NewTask, Task, TaskFilter


def _names(enum: Any, prefix: str) -> tuple[dict[int, str], dict[str, int]]:
    to_name = {v.number: v.name.removeprefix(prefix).lower() for v in enum.DESCRIPTOR.values if v.number}
    return to_name, {name: number for number, name in to_name.items()}


STATUS_NAME, STATUS_NUMBER = _names(task_pb2.TaskStatus, "TASK_STATUS_")
SOURCE_NAME, SOURCE_NUMBER = _names(task_pb2.TriggerSource, "TRIGGER_SOURCE_")
ROLE_NAME, ROLE_NUMBER = _names(task_pb2.EventRole, "EVENT_ROLE_")
TYPE_NAME, TYPE_NUMBER = _names(task_pb2.EventType, "EVENT_TYPE_")
_ROLE_ENUM = task_pb2.EventRole.DESCRIPTOR
_TYPE_ENUM = task_pb2.EventType.DESCRIPTOR
# What callers may send, for the words of a violation: the service alone emits status and plan.
_CALLER_TYPES = frozenset(n for n, name in TYPE_NAME.items() if name not in ev.SYSTEM_TYPES)
_USER_ROLES = frozenset(ROLE_NUMBER[role] for role in ev.USER_ROLES)
_WORKER_ROLES = frozenset(ROLE_NUMBER[role] for role in ev.WORKER_ROLES)

MAX_NOTE_CHARS = 2000
MAX_REASON_CHARS = 200
MAX_MESSAGE_CHARS = 10_000


# -- outgoing -----------------------------------------------------------------------------------


def task_to_proto(task: Task) -> task_pb2.Task:
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


def event_to_proto(event: Event) -> task_pb2.TaskEvent:
    """Made once per event and shared by every stream that sends it."""
    if event.wire is None:
        message = task_pb2.TaskEvent(
            task_id=event.task_id,
            seq=event.seq,
            role=ROLE_NUMBER[event.role],  # type: ignore[arg-type]
            type=TYPE_NUMBER[event.type],  # type: ignore[arg-type]
            content_text=event.content_text,
            client_key=event.client_key or "",
            create_time=timestamp(event.created_at),
        )
        if event.render_payload is not None:
            message.render_payload.update(event.render_payload)
        if event.metadata:
            message.metadata.update(event.metadata)
        event.wire = message
    return event.wire  # type: ignore[no-any-return]


_last_stamp: tuple[datetime, timestamp_pb2.Timestamp] | None = None


def _stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """Every receipt of one group commit carries the same time: convert it once."""
    global _last_stamp
    if _last_stamp is None or _last_stamp[0] is not moment:
        _last_stamp = (moment, timestamp(moment))
    return _last_stamp[1]


def append_response(task_id: str, receipts: Sequence[Receipt]) -> runtime_pb2.AppendTaskEventsResponse:
    response = runtime_pb2.AppendTaskEventsResponse()
    for receipt in receipts:
        out = response.events.add(task_id=task_id, seq=receipt.seq)
        if receipt.client_key:
            out.client_key = receipt.client_key
        out.create_time.CopyFrom(_stamp(receipt.created_at))
    return response


def claimed_to_proto(claimed: Sequence[ClaimedTask]) -> runtime_pb2.ClaimTasksResponse:
    return runtime_pb2.ClaimTasksResponse(
        claimed=[
            runtime_pb2.ClaimedTask(task=task_to_proto(c.task), lease=lease(c.task.id, c.lease_id, c.expires_at))
            for c in claimed
        ]
    )


def claimed_size(task: Task) -> int:
    """The encoded size of the ClaimedTask a claim of `task` answers (its lease is fixed-size)."""
    placeholder = task_pb2.Lease(task_id=task.id, lease_id=task.id, expire_time=timestamp(task.updated_at))
    return runtime_pb2.ClaimedTask(task=task_to_proto(task), lease=placeholder).ByteSize()


def lease(task_id: str, lease_id: str, expires_at: datetime) -> task_pb2.Lease:
    return task_pb2.Lease(task_id=task_id, lease_id=lease_id, expire_time=timestamp(expires_at))


# -- incoming -----------------------------------------------------------------------------------


def task_id(value: str, field: str = "task_id") -> str:
    v = Violations()
    checked = v.uuid(field, value)
    v.raise_if_any()
    assert checked is not None
    return checked


def new_task(request: runtime_pb2.CreateTaskRequest, user_id: str) -> NewTask:
    v = Violations()
    t = request.task
    request_id = v.uuid("request_id", request.request_id, required=False)
    agent_id = v.slug("task.agent_id", t.agent_id)
    team_id = v.uuid("task.team_id", t.team_id, required=False)
    session_id = v.uuid("task.session_id", t.session_id, required=False)
    v.enum("task.trigger_source", t.trigger_source, task_pb2.TriggerSource.DESCRIPTOR)
    skill = v.slug("task.origin_skill_id", t.origin_skill_id, required=False)
    title = v.text("task.title", t.title, max_len=MAX_TITLE_CHARS, required=True)
    inputs = v.struct("task.inputs", t.inputs)
    plan = workspace_convert.plan_steps(v, "initial_plan", request.initial_plan)
    variables = v.struct("initial_variables", request.initial_variables)
    v.raise_if_any()
    workspace_convert.require_valid_plan(plan, "initial_plan")
    return NewTask(
        user_id=user_id,
        agent_id=agent_id,
        team_id=team_id,
        session_id=session_id,
        trigger_source=SOURCE_NAME[t.trigger_source],
        origin_skill_id=skill or None,
        title=title,
        inputs=inputs,
        request_id=request_id,
        plan=tuple(plan),
        variables=variables,
    )


def task_filter(request: runtime_pb2.ListTasksRequest, user_id: str) -> tuple[TaskFilter, int, list[Any] | None]:
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
    cursor = paging.decode(request.page_token, _fingerprint(where))
    if cursor is not None and not _valid_task_cursor(cursor):
        raise _bad_token()
    return where, validation.page_size(request.page_size), cursor


def _valid_task_cursor(cursor: list[Any]) -> bool:
    return (
        len(cursor) == 3
        and isinstance(cursor[0], bool)
        and type(cursor[1]) is int
        and 0 <= cursor[1] < 2**62
        and isinstance(cursor[2], str)
        and validation._UUID.match(cursor[2]) is not None
    )


def _bad_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token is not valid for this request",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation("page_token", "is malformed, expired, or from another request")],
    )


def _fingerprint(where: TaskFilter) -> str:
    return paging.query_fingerprint(
        "tasks", where.user_id, where.statuses, where.archived, where.agent_id, where.session_id
    )


def next_task_token(where: TaskFilter, cursor: list[Any] | None) -> str:
    return "" if cursor is None else paging.encode(cursor, _fingerprint(where))


def task_changes(request: runtime_pb2.UpdateTaskRequest) -> tuple[str, dict[str, Any], str]:
    paths = validation.update_paths(request.update_mask, request.task, EDITABLE)
    v = Violations()
    tid = v.uuid("task.task_id", request.task.task_id)
    etag = v.text("task.etag", request.task.etag, max_len=100)
    changes: dict[str, Any] = {}
    if "title" in paths:
        changes["title"] = v.text("task.title", request.task.title, max_len=MAX_TITLE_CHARS, required=True)
    if "is_pinned" in paths:
        changes["is_pinned"] = request.task.is_pinned
    if "is_archived" in paths:
        changes["is_archived"] = request.task.is_archived
    v.raise_if_any()
    assert tid is not None
    return tid, changes, etag


def event_range(request: runtime_pb2.ListTaskEventsRequest) -> tuple[str, int, int, int]:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    v.check(request.after_seq >= 0, "after_seq", "must not be negative")
    v.check(request.before_seq >= 0, "before_seq", "must not be negative")
    v.check(request.page_size >= 0, "page_size", "must not be negative")
    v.raise_if_any()
    assert tid is not None
    after = request.after_seq
    cursor = paging.decode(request.page_token, _event_fingerprint(tid, request.after_seq, request.before_seq))
    if cursor is not None:
        if len(cursor) != 1 or type(cursor[0]) is not int or cursor[0] < after:
            raise _bad_token()
        after = cursor[0]
    return tid, after, request.before_seq, validation.page_size(request.page_size)


def _event_fingerprint(tid: str, after: int, before: int) -> str:
    return paging.query_fingerprint("events", tid, after, before)


def next_event_token(request: runtime_pb2.ListTaskEventsRequest, tid: str, last: Event | None) -> str:
    """The token after `last`, the last event served when more may follow ("" when none do)."""
    if last is None:
        return ""
    return paging.encode([last.seq], _event_fingerprint(tid, request.after_seq, request.before_seq))


def stream_request(request: runtime_pb2.StreamTaskEventsRequest) -> tuple[str, int]:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    v.check(request.after_seq >= 0, "after_seq", "must not be negative")
    v.raise_if_any()
    assert tid is not None
    return tid, request.after_seq


def _event(v: Violations, field: str, message: task_pb2.TaskEvent, *, by_worker: bool) -> NewEvent:
    # On the append path: field names are formatted only for a field that is bad. A decoded
    # proto3 string is valid UTF-8, so NUL and length are all a string can get wrong here.
    role = ROLE_NAME.get(message.role, "")
    type_ = TYPE_NAME.get(message.type, "")
    if not role:
        v.enum(f"{field}.role", message.role, _ROLE_ENUM, allowed=_WORKER_ROLES if by_worker else _USER_ROLES)
    if not type_:
        v.enum(f"{field}.type", message.type, _TYPE_ENUM, allowed=_CALLER_TYPES)
    text = message.content_text
    if text and (len(text) > ev.MAX_CONTENT_CHARS or "\x00" in text):
        v.text(f"{field}.content_text", text, max_len=ev.MAX_CONTENT_CHARS)
    key = message.client_key
    if key and (len(key) > ev.MAX_CLIENT_KEY_CHARS or "\x00" in key):
        v.text(f"{field}.client_key", key, max_len=ev.MAX_CLIENT_KEY_CHARS)
    payload = None
    if message.HasField("render_payload"):
        payload = v.struct(f"{field}.render_payload", message.render_payload)
    metadata = v.struct(f"{field}.metadata", message.metadata) if message.HasField("metadata") else {}
    event = NewEvent(role, type_, text, payload, metadata, key or None)
    if role and type_:
        for name, problem in ev.event_problems(event, by_worker=by_worker):
            v.add(f"{field}.{name}", problem)
    return event


def append_request(request: runtime_pb2.AppendTaskEventsRequest, *, by_worker: bool) -> tuple[str, list[NewEvent]]:
    v = Violations()
    tid = request.task_id
    # A well-formed id needs no parsing: lowercase is the canonical form v.uuid would return.
    well_formed = len(tid) == 36 and validation._UUID.match(tid) is not None
    tid = tid.lower() if well_formed else v.uuid("task_id", tid) or ""
    count = len(request.events)
    if not 1 <= count <= ev.MAX_BATCH_EVENTS:
        v.add("events", f"must hold 1 to {ev.MAX_BATCH_EVENTS} events, got {count}")
    elif request.ByteSize() > ev.MAX_BATCH_BYTES:
        v.add("events", f"must be at most {ev.MAX_BATCH_BYTES} bytes in all")
    if not by_worker and request.lease_id:
        v.add("lease_id", "is for workers; owners leave it empty")
    events = [] if v else [_event(v, f"events[{i}]", m, by_worker=by_worker) for i, m in enumerate(request.events)]
    if count > 1:
        keys = [e.client_key for e in events if e.client_key is not None]
        if len(keys) != len(set(keys)):
            v.add("events", "client_key values must be unique within one append")
    v.raise_if_any()
    return tid, events


def single_event(field: str, message: task_pb2.TaskEvent, *, by_worker: bool) -> NewEvent:
    v = Violations()
    event = _event(v, field, message, by_worker=by_worker)
    v.raise_if_any()
    return event


def lease_id(value: str) -> str:
    v = Violations()
    checked = v.uuid("lease_id", value)
    v.raise_if_any()
    assert checked is not None
    return checked


def lease_seconds(field: str, value: duration_pb2.Duration, v: Violations) -> float:
    seconds = value.seconds + value.nanos / 1e9
    checked = leases.lease_seconds(seconds)
    if checked is None:
        v.add(field, f"must be between {leases.MIN_LEASE_S} s and {leases.MAX_LEASE_S:.0f} s")
        return leases.DEFAULT_LEASE_S
    return checked


def claim(request: runtime_pb2.ClaimTasksRequest) -> tuple[list[str], int, float]:
    v = Violations()
    count = len(request.agent_ids)
    if not 1 <= count <= leases.MAX_CLAIM_AGENTS:
        v.add("agent_ids", f"must name 1 to {leases.MAX_CLAIM_AGENTS} agents")
    agents = [v.slug(f"agent_ids[{i}]", a) for i, a in enumerate(request.agent_ids[: leases.MAX_CLAIM_AGENTS])]
    v.check(1 <= request.max_tasks <= leases.MAX_CLAIM, "max_tasks", f"must be 1 to {leases.MAX_CLAIM}")
    seconds = lease_seconds("lease_duration", request.lease_duration, v)
    v.raise_if_any()
    return sorted(set(agents)), request.max_tasks, seconds


def renew(request: runtime_pb2.RenewLeaseRequest) -> tuple[str, str, float]:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    lid = v.uuid("lease_id", request.lease_id)
    seconds = lease_seconds("lease_duration", request.lease_duration, v)
    v.raise_if_any()
    assert tid is not None and lid is not None
    return tid, lid, seconds


def drive(tid_value: str, lid_value: str) -> tuple[str, str]:
    v = Violations()
    tid = v.uuid("task_id", tid_value)
    lid = v.uuid("lease_id", lid_value)
    v.raise_if_any()
    assert tid is not None and lid is not None
    return tid, lid


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
