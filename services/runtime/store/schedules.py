"""Cron schedules (SQLAlchemy Core) and the scheduler's firing step.

**Exactly once across replicas.** `fire_due` takes due schedules with `FOR UPDATE SKIP LOCKED`
and, in the same transaction, creates each one's task and moves its `next_fire_at` past now.
A replica that polls concurrently skips the locked rows; one that polls after the commit sees
`next_fire_at` in the future (under READ COMMITTED a row changed since the statement's snapshot
is re-checked against the WHERE clause). The task's schedule and due time, unique together
(`task_schedule_fire_unique`), are a second guard that no lifetime ends: a duplicate firing would
find the first task instead of making one. (Not a request id: the request log forgets those.)
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit import paging
from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.runtime.domain import schedules
from services.runtime.domain.schedules import Command, NewSchedule, Schedule, State
from services.runtime.store.tables import schedule
from services.runtime.store.tasks import TaskStore

log = logging.getLogger("nexus.runtime.scheduler")


@dataclass(frozen=True)
class ScheduleCursor:
    """The schedules' order: newest first."""

    created_at: datetime
    id: paging.UUID


def _schedule(row: Any) -> Schedule:
    return Schedule(
        id=row.id,
        user_id=row.user_id,
        cron=row.cron,
        time_zone=row.time_zone,
        command=Command(
            agent_id=row.agent_id, skill_id=row.skill_id, team_id=row.team_id, inputs=row.inputs, title=row.title
        ),
        state=row.state,
        next_fire_at=row.next_fire_at,
        last_fire_at=row.last_fire_at,
        last_task_id=row.last_task_id,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _mine(user_id: str, schedule_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return schedule.c.id == schedule_id, schedule.c.user_id == user_id


class ScheduleStore:
    def __init__(self, db: Database, tasks: TaskStore, requests: RequestLog) -> None:
        self._db = db
        self._tasks = tasks
        self._requests = requests

    async def create(self, new: NewSchedule, next_fire_at: datetime, key: RequestKey | None) -> Schedule:
        command = new.command
        schedule_id = str(uuid.uuid4())
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, schedule_id)
            if first is not None:
                return await self._get(conn, new.user_id, first)
            row = (
                await conn.execute(
                    schedule.insert()
                    .values(
                        id=schedule_id,
                        user_id=new.user_id,
                        cron=new.cron,
                        time_zone=new.time_zone,
                        agent_id=command.agent_id,
                        skill_id=command.skill_id,
                        team_id=command.team_id,
                        inputs=command.inputs,
                        title=command.title,
                        state=str(State.ACTIVE),
                        next_fire_at=next_fire_at,
                        version=1,
                    )
                    .returning(schedule)
                )
            ).one()
        return _schedule(row)

    async def get(self, user_id: str, schedule_id: str) -> Schedule:
        async with self._db.connection() as conn:
            return await self._get(conn, user_id, schedule_id)

    @staticmethod
    async def _get(conn: AsyncConnection, user_id: str, schedule_id: str) -> Schedule:
        row = (await conn.execute(sa.select(schedule).where(*_mine(user_id, schedule_id)))).one_or_none()
        if row is None:
            raise not_found("schedule")
        return _schedule(row)

    async def page(self, user_id: str, page: Rows[Schedule, ScheduleCursor]) -> None:
        """Newest first (keyset on create time and id)."""
        query = sa.select(schedule).where(schedule.c.user_id == user_id)
        after = page.after
        if after is not None:
            query = query.where(
                sa.tuple_(schedule.c.created_at, schedule.c.id)
                < sa.tuple_(
                    sa.literal(after.created_at, schedule.c.created_at.type), sa.literal(after.id, schedule.c.id.type)
                )
            )
        query = query.order_by(schedule.c.created_at.desc(), schedule.c.id.desc())
        async with self._db.connection() as conn:
            await read_page(conn, query, page, _schedule)

    async def set_state(self, user_id: str, schedule_id: str, state: State, etag: str) -> Schedule:
        """Pause or resume; idempotent (already in that state: returned unchanged). Resuming
        fires next at the first time after now: times missed while paused do not fire."""
        async with self._db.transaction() as conn:
            row = await self._lock(conn, user_id, schedule_id, etag)
            if row.state == state:
                return _schedule(row)
            now: datetime = (await conn.execute(sa.select(sa.func.now()))).scalar_one()
            next_fire = schedules.next_fire(row.cron, row.time_zone, now) if state is State.ACTIVE else None
            if state is State.ACTIVE and next_fire is None:
                return _schedule(row)  # never fires again: stays paused
            updated = (
                await conn.execute(
                    sa.update(schedule)
                    .where(schedule.c.id == schedule_id)
                    .values(state=str(state), next_fire_at=next_fire, **bumped(schedule))
                    .returning(schedule)
                )
            ).one()
        return _schedule(updated)

    async def delete(self, user_id: str, schedule_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            await self._lock(conn, user_id, schedule_id, etag)
            await conn.execute(sa.delete(schedule).where(schedule.c.id == schedule_id))

    @staticmethod
    async def _lock(conn: AsyncConnection, user_id: str, schedule_id: str, etag: str) -> Any:
        row = (
            await conn.execute(sa.select(schedule).where(*_mine(user_id, schedule_id)).with_for_update())
        ).one_or_none()
        if row is None:
            raise not_found("schedule")
        check_etag(etag, row.version, "schedule")
        return row

    # -- the scheduler ------------------------------------------------------------------------

    async def fire_due(self, limit: int = 50) -> int:
        """Fires up to `limit` due schedules, each once, in one transaction; returns how many."""
        async with self._db.transaction() as conn:
            now: datetime = (await conn.execute(sa.select(sa.func.now()))).scalar_one()
            rows = (
                await conn.execute(
                    sa.select(schedule)
                    .where(schedule.c.state == str(State.ACTIVE), schedule.c.next_fire_at <= now)
                    .order_by(schedule.c.next_fire_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                due: datetime = row.next_fire_at
                task_id = None
                try:
                    async with conn.begin_nested():
                        task_id = (await self._tasks.insert(conn, schedules.fired_task(_schedule(row), due))).id
                except Exception as exc:
                    # A schedule that cannot fire must not block the others, nor fire in a loop:
                    # it moves on to its next time like any other.
                    log.warning(
                        "schedule could not fire",
                        extra={"fields": {"schedule_id": row.id, "error": type(exc).__name__}},
                    )
                # After now, not after `due`: after downtime the missed times fire once.
                next_fire = schedules.next_fire(row.cron, row.time_zone, now)
                values: dict[str, Any] = {"next_fire_at": next_fire, "updated_at": sa.func.now(), "last_fire_at": due}
                if task_id is not None:
                    values["last_task_id"] = task_id
                if next_fire is None:
                    values["state"] = str(State.PAUSED)
                await conn.execute(sa.update(schedule).where(schedule.c.id == row.id).values(values))
        if rows:
            log.info("schedules fired", extra={"fields": {"count": len(rows)}})
        return len(rows)
