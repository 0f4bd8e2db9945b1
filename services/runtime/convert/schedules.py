"""Schedules: proto ↔ domain, and request validation (DESIGN §5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from nexus.kit import idempotency
from nexus.kit.idempotency import RequestKey
from nexus.kit.paging import Keyset
from nexus.kit.protos import timestamp
from nexus.kit.validation import Violations
from nexus.runtime.v1 import schedule_pb2
from services.runtime.convert.shared import Target
from services.runtime.domain import cron
from services.runtime.domain.schedules import MAX_TITLE_CHARS, Command, NewSchedule, Schedule, State
from services.runtime.store.schedules import ScheduleCursor

STATE_NUMBER = {State.ACTIVE: schedule_pb2.SCHEDULE_STATE_ACTIVE, State.PAUSED: schedule_pb2.SCHEDULE_STATE_PAUSED}
ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}")
ZONE_HINT = "must be an IANA time zone name such as Europe/Berlin"


@dataclass(frozen=True, slots=True)
class Creation:
    """A CreateSchedule request: the schedule, its first due time, and the key of its request_id
    (None without one)."""

    schedule: NewSchedule
    first_fire_at: datetime
    key: RequestKey | None


def to_proto(item: Schedule) -> schedule_pb2.Schedule:
    c = item.command
    message = schedule_pb2.Schedule(
        schedule_id=item.id,
        user_id=item.user_id,
        cron=item.cron,
        time_zone=item.time_zone,
        command=schedule_pb2.ScheduledCommand(
            agent_id=c.agent_id, skill_id=c.skill_id or "", team_id=c.team_id or "", title=c.title
        ),
        state=STATE_NUMBER[State(item.state)],
        last_task_id=item.last_task_id or "",
        create_time=timestamp(item.created_at),
        update_time=timestamp(item.updated_at),
        etag=item.etag,
    )
    message.command.inputs.update(c.inputs)
    if item.next_fire_at is not None:
        message.next_fire_time.CopyFrom(timestamp(item.next_fire_at))
    if item.last_fire_at is not None:
        message.last_fire_time.CopyFrom(timestamp(item.last_fire_at))
    return message


def creation(request: schedule_pb2.CreateScheduleRequest, user_id: str, now: datetime) -> Creation:
    """The schedule and its first due time (after `now`)."""
    v = Violations()
    s, c = request.schedule, request.schedule.command
    key = idempotency.key(v, request, request.request_id, principal=user_id, method="CreateSchedule")
    expression = v.text("schedule.cron", s.cron, max_len=cron.MAX_EXPRESSION_CHARS, required=True)
    zone = v.text("schedule.time_zone", s.time_zone, max_len=64, pattern=ZONE_NAME, pattern_hint=ZONE_HINT)
    agent_id = v.slug("schedule.command.agent_id", c.agent_id)
    skill_id = v.slug("schedule.command.skill_id", c.skill_id, required=False)
    team_id = v.uuid("schedule.command.team_id", c.team_id, required=False)
    inputs = v.struct("schedule.command.inputs", c.inputs)
    title = v.text("schedule.command.title", c.title, max_len=MAX_TITLE_CHARS, required=True)
    first: datetime | None = None
    if not any(x.field in ("schedule.cron", "schedule.time_zone") for x in v.items):
        try:
            parsed = cron.parse(expression)
        except cron.CronError as bad:
            v.add("schedule.cron", str(bad))
        else:
            try:
                first = cron.next_after(parsed, cron.zone(zone), now)
            except cron.CronError as bad:
                v.add("schedule.time_zone", str(bad))
            else:
                v.check(first is not None, "schedule.cron", "names no time that ever comes (such as 30 February)")
    v.raise_if_any()
    assert first is not None
    command = Command(agent_id=agent_id, skill_id=skill_id or None, team_id=team_id, inputs=inputs, title=title)
    return Creation(NewSchedule(user_id, expression.strip(), zone or "UTC", command), first, key)


def listing(user_id: str) -> Keyset[ScheduleCursor]:
    """The page tokens of the caller's schedules."""
    return Keyset(ScheduleCursor, "schedules", user_id)


def target(schedule_id: str, etag: str) -> Target:
    v = Violations()
    sid = v.uuid("schedule_id", schedule_id)
    v.etag("etag", etag)
    v.raise_if_any()
    assert sid is not None
    return Target(sid, etag)
