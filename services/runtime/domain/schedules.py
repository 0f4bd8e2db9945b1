"""Schedules: a cron expression plus a resolved command (DESIGN §3). Pure rules, no I/O.

**Firing.** A schedule is due when `next_fire_at <= now`. The scheduler fires it once for that
due time and sets `next_fire_at` to the first time after *now* (not after the due time): after
downtime, every missed time collapses into one firing. The fired task carries its schedule and
due time, which are unique together, so even a duplicate firing could not create a second task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from nexus.kit.protos import etag
from services.runtime.domain import cron
from services.runtime.domain.tasks import NewTask

MAX_TITLE_CHARS = 500


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
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return etag(self.version)


def next_fire(expression: str, time_zone: str, after: datetime) -> datetime | None:
    """The first due time after `after`; CronError for an expression or zone that is invalid."""
    return cron.next_after(cron.parse(expression), cron.zone(time_zone), after)


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
        schedule_id=schedule.id,
        scheduled_at=due,
    )


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One declared input of the skill a schedule runs (from the ontology service)."""

    name: str
    type: str  # string, integer, number, boolean, url, enum, json
    required: bool = False
    has_default: bool = False
    allowed_values: tuple[str, ...] = ()


def _type_problem(spec: InputSpec, value: Any) -> str | None:
    if spec.type in ("string", "url", "enum") and not isinstance(value, str):
        return f"must be a {spec.type} (a JSON string)"
    if spec.type == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "must be an absolute http or https URL"
    if spec.type == "enum" and value not in spec.allowed_values:
        return "must be one of the skill's allowed values"
    if spec.type == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be a whole number"
    if spec.type == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "must be a number"
    if spec.type == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    return None


def input_problems(specs: Sequence[InputSpec], inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(input name, problem) for every input the pre-resolved command gives that the skill does
    not declare or that has the wrong type, and every required input it lacks. Values are
    checked, not coerced: the gateway resolved the command (ontology ResolveCommand) already."""
    declared = {spec.name: spec for spec in specs}
    problems: list[tuple[str, str]] = []
    for name, value in inputs.items():
        spec = declared.get(name)
        if spec is None:
            problems.append((name, "is not an input of the skill"))
            continue
        problem = _type_problem(spec, value)
        if problem:
            problems.append((name, problem))
    for spec in specs:
        if spec.required and not spec.has_default and spec.name not in inputs:
            problems.append((spec.name, "is required by the skill"))
    return problems
