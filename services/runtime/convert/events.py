"""A task's events: proto ↔ domain, and the checks of appends, reads and streams (DESIGN §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf import timestamp_pb2

from nexus.kit import validation
from nexus.kit.paging import Keyset
from nexus.kit.protos import timestamp
from nexus.kit.validation import Violations
from nexus.runtime.v1 import runtime_pb2, task_pb2
from services.runtime.convert.shared import enum_names
from services.runtime.domain import events as ev
from services.runtime.domain.events import Event, NewEvent, Receipt

ROLE_NAME, ROLE_NUMBER = enum_names(task_pb2.EventRole, "EVENT_ROLE_")
TYPE_NAME, TYPE_NUMBER = enum_names(task_pb2.EventType, "EVENT_TYPE_")
_ROLE_ENUM = task_pb2.EventRole.DESCRIPTOR
_TYPE_ENUM = task_pb2.EventType.DESCRIPTOR
# What callers may send, for the words of a violation: the service alone emits status and plan.
_CALLER_TYPES = frozenset(n for n, name in TYPE_NAME.items() if name not in ev.SYSTEM_TYPES)
_USER_ROLES = frozenset(ROLE_NUMBER[role] for role in ev.USER_ROLES)
_WORKER_ROLES = frozenset(ROLE_NUMBER[role] for role in ev.WORKER_ROLES)


@dataclass(frozen=True, slots=True)
class Append:
    """An AppendTaskEvents request, checked: the task and its new events, in order."""

    task_id: str
    events: list[NewEvent]


@dataclass(frozen=True)
class EventCursor:
    """A task's events in seq order: the last seq a page served."""

    seq: int


@dataclass(frozen=True, slots=True)
class Range:
    """A ListTaskEvents request: seqs after `after_seq` (or after its token's cursor) and
    before `before_seq` (0: no bound), and the page tokens of that range."""

    task_id: str
    after_seq: int
    before_seq: int
    keyset: Keyset[EventCursor]

    def after(self, cursor: EventCursor | None) -> int:
        """The seq a page starts after: its token's, else the request's."""
        return self.after_seq if cursor is None else cursor.seq


@dataclass(frozen=True, slots=True)
class Follow:
    """A StreamTaskEvents request: the task, and the last seq the client has seen."""

    task_id: str
    after_seq: int


# -- outgoing -----------------------------------------------------------------------------------


def to_proto(event: Event) -> task_pb2.TaskEvent:
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


# -- incoming -----------------------------------------------------------------------------------


def listing(request: runtime_pb2.ListTaskEventsRequest) -> Range:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    v.check(request.after_seq >= 0, "after_seq", "must not be negative")
    v.check(request.before_seq >= 0, "before_seq", "must not be negative")
    v.check(request.page_size >= 0, "page_size", "must not be negative")
    v.raise_if_any()
    assert tid is not None
    after, before = request.after_seq, request.before_seq
    # A token's seq comes from a page of this range: never before the range's start.
    keyset = Keyset(EventCursor, "events", tid, after, before, check=lambda cursor: cursor.seq >= after)
    return Range(tid, after, before, keyset)


def follow(request: runtime_pb2.StreamTaskEventsRequest) -> Follow:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    v.check(request.after_seq >= 0, "after_seq", "must not be negative")
    v.raise_if_any()
    assert tid is not None
    return Follow(tid, request.after_seq)


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


def append(request: runtime_pb2.AppendTaskEventsRequest, *, by_worker: bool) -> Append:
    v = Violations()
    tid = request.task_id
    # A well-formed id needs no parsing: lowercase is the canonical form v.uuid would return.
    well_formed = validation.is_uuid(tid)
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
    return Append(tid, events)


def single_event(field: str, message: task_pb2.TaskEvent, *, by_worker: bool) -> NewEvent:
    v = Violations()
    event = _event(v, field, message, by_worker=by_worker)
    v.raise_if_any()
    return event
