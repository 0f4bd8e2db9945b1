"""Schedules: a cron expression plus a resolved command (DESIGN §3). Pure rules, no I/O.

**Firing.** A schedule is due when `next_fire_at <= now`. The scheduler fires it once for that
due time and sets `next_fire_at` to the first time after *now* (not after the due time): after
downtime, every missed time collapses into one firing. The fired task's request_id is derived
from (schedule, due time), so even a duplicate firing could not create a second task.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.runtime.domain import cron
from services.runtime.domain.tasks import NewTask

MAX_TITLE_CHARS = 500
# Fixed forever: changing it would change every fired task's request_id.
_FIRE_NAMESPACE = uuid.UUID("6f1c1a4e-2b7d-5c55-9a59-3f5f0f0c9e21")


class State(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


@dataclass(slots=True)
class Command:
    agent_id: str
    skill_id: str | None
    team_id: str | None
    inputs: dict[str, Any]
    title: str


@dataclass(slots=True)
class NewSchedule:
    user_id: str
    cron: str
    time_zone: str
    command: Command
    request_id: str | None


@dataclass(slots=True)
class Schedule:
    id: str
    user_id: str
    cron: str
    time_zone: str
    command: Command
    state: str
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    last_task_id: str | None
    edit_version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return f'W/"{self.edit_version}"'


def next_fire(expression: str, time_zone: str, after: datetime) -> datetime | None:
    """The first due time after `after`; CronError for an expression or zone that is invalid."""
    return cron.next_after(cron.parse(expression), cron.zone(time_zone), after)


def fire_request_id(schedule_id: str, due: datetime) -> str:
    return str(uuid.uuid5(_FIRE_NAMESPACE, f"{schedule_id}@{due.timestamp():.6f}"))


def fired_task(schedule: Schedule, due: datetime) -> NewTask:
    """The task one firing creates: the schedule owner's, from the pre-resolved command."""
    command = schedule.command
    return NewTask(
        user_id=schedule.user_id,
        agent_id=command.agent_id,
        team_id=command.team_id,
        session_id=None,
        trigger_source="cron_trigger",
        origin_skill_id=command.skill_id,
        title=command.title,
        inputs=command.inputs,
        request_id=fire_request_id(schedule.id, due),
        schedule_id=schedule.id,
    )
