"""Tasks, their transitions and worker leases: SQLAlchemy Core, one transaction per call.

Every status change locks the task row (`FOR NO KEY UPDATE`), checks the move with the domain
state machine, and appends its status event through `writer` (the one writer of event rows,
which the event log's hot path uses too), all in one transaction. Both paths take the same row
lock, so they interleave safely and seqs stay gapless and in commit order.

Lock order: a statement here that may wait for several task rows takes them in id order (as the
writer does); the claim and the lease reaper take theirs `SKIP LOCKED`, so they never wait for a
row and cannot be part of a deadlock, whatever order they lock in.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit import paging
from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import invalid, not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.runtime.domain import leases, states
from services.runtime.domain.events import Event, NewEvent
from services.runtime.domain.states import Reason, Status
from services.runtime.domain.tasks import Actor, ClaimedTask, NewTask, Task, TaskFilter, require_visible
from services.runtime.store import writer
from services.runtime.store.tables import session, task

Publish = Callable[[str, list[Event]], None]
# Writes a new task's first workspace rows in its transaction; returns the events they add.
Seeder = Callable[[AsyncConnection, str], Awaitable[Sequence[NewEvent]]]
R = TypeVar("R")

# Row locks here are FOR NO KEY UPDATE (SQLAlchemy: `with_for_update(key_share=True)`), as the
# writer's: the updates change no key, and it does not wait for the KEY SHARE locks of inserts
# into the workspace tables (their foreign keys).
# clock_timestamp(), not now(): now() is when the transaction began, perhaps long before a lock wait.
_LIVE = (task.c.lease_expires_at > sa.func.clock_timestamp()).label("lease_live")


def _task(row: Any) -> Task:
    return Task(
        id=row.id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        team_id=row.team_id,
        session_id=row.session_id,
        trigger_source=row.trigger_source,
        origin_skill_id=row.origin_skill_id,
        title=row.title,
        inputs=row.inputs,
        status=row.status,
        result=row.result,
        error=row.error,
        is_pinned=row.is_pinned,
        is_archived=row.is_archived,
        last_seq=row.last_seq,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_active_at=row.last_active_at,
        schedule_id=row.schedule_id,
    )


def _lease_state(row: Any) -> leases.LeaseState:
    return leases.LeaseState(
        status=row.status, lease_id=row.lease_id, holder=row.lease_holder, live=bool(row.lease_live)
    )


@dataclass(frozen=True)
class TaskCursor:
    """The sidebar order: pinned first, then most recently active, newest first."""

    is_pinned: bool
    last_active_at: datetime
    id: paging.UUID


@dataclass(frozen=True, slots=True)
class TaskState:
    """What a workspace write needs to know about its task: owner and lease (as read, or as
    locked by `locked_write`)."""

    id: str
    user_id: str
    lease: leases.LeaseState


def _stored(task_id: str, after_seq: int, events: Sequence[NewEvent], created_at: datetime) -> list[Event]:
    return [
        Event(
            task_id=task_id,
            seq=after_seq + i,
            role=str(e.role),
            type=str(e.type),
            content_text=e.content_text,
            render_payload=e.render_payload,
            metadata=e.metadata,
            client_key=e.client_key,
            created_at=created_at,
        )
        for i, e in enumerate(events, start=1)
    ]


class TaskStore:
    def __init__(self, db: Database, publish: Publish, requests: RequestLog) -> None:
        self._db = db
        self._publish = publish
        self._requests = requests

    # -- plumbing shared by every transition -------------------------------------------------

    async def _lock(self, conn: AsyncConnection, task_id: str) -> Any:
        query = sa.select(task, _LIVE).where(task.c.id == task_id).with_for_update(key_share=True)
        return (await conn.execute(query)).one_or_none()

    @staticmethod
    async def _append(
        conn: AsyncConnection, task_id: str, events: Sequence[NewEvent], *, notify: bool = True
    ) -> writer.Advanced:
        """Appends to a task whose row this transaction has locked (or just created)."""
        batch = writer.Batch()
        batch.add(task_id, events)
        # The writer's statement is psycopg's, run on this transaction's own connection.
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        advanced = await (await writer.write(driver, batch, notify=notify)).advanced()
        return advanced[task_id]

    async def _move(
        self,
        conn: AsyncConnection,
        row: Any,
        reason: Reason,
        *,
        note: str = "",
        worker: str | None = None,
        before: Sequence[NewEvent] = (),
        values: dict[str, Any] | None = None,
        lease_s: float | None = None,
    ) -> tuple[Task, list[Event]]:
        """Applies one legal transition to a locked row, with its status event (and any events
        that belong before it, such as a question), in the caller's transaction. A new lease
        (`lease_s`) runs from the status event's time."""
        target = states.transition(row.status, reason)
        new = [*before, states.status_event(row.status, reason, note, worker=worker)]
        advanced = await self._append(conn, row.id, new)
        changes: dict[str, Any] = {"status": str(target), "state_version": task.c.state_version + 1}
        if target != Status.RUNNING:
            changes.update(lease_id=None, lease_holder=None, lease_expires_at=None)
        if lease_s is not None:
            changes["lease_expires_at"] = advanced.at + timedelta(seconds=lease_s)
        changes.update(values or {})
        updated = (await conn.execute(sa.update(task).where(task.c.id == row.id).values(changes).returning(task))).one()
        return _task(updated), _stored(row.id, advanced.base, new, advanced.at)

    async def _append_system(self, conn: AsyncConnection, row: Any, new: Sequence[NewEvent]) -> list[Event]:
        """Appends system events that change no status (a `plan` event) to a locked row, in the
        caller's transaction. The owner, status and lease stay as they are, so `state_version`
        is not bumped: the event log's fast path checked its cached state against exactly
        those, and its guarded write takes `last_seq` from the row itself (waiting for this
        lock), so its seqs follow ours."""
        advanced = await self._append(conn, row.id, new)
        return _stored(row.id, advanced.base, new, advanced.at)

    async def locked_write(
        self,
        actor: Actor,
        task_id: str,
        write: Callable[[AsyncConnection, TaskState], Awaitable[tuple[R, NewEvent | None]]],
    ) -> R:
        """A workspace change that the task's stream must show (the plan): locks the task row,
        runs `write` (its own checks and SQL) in the same transaction, appends the system event
        it returns, commits, then hands the event to local streams."""
        async with self._db.transaction() as conn:
            row = await self._lock(conn, task_id)
            require_visible(actor, row.user_id if row else None)
            result, event = await write(conn, TaskState(row.id, row.user_id, _lease_state(row)))
            events = await self._append_system(conn, row, [event]) if event is not None else []
        if events:
            self._publish(task_id, events)
        return result

    @staticmethod
    async def read_state(conn: AsyncConnection, actor: Actor, task_id: str) -> TaskState:
        """The task's owner and lease, without a lock; NOT_FOUND unless the actor may see it."""
        row = (
            await conn.execute(
                sa.select(task.c.id, task.c.user_id, task.c.status, task.c.lease_id, task.c.lease_holder, _LIVE).where(
                    task.c.id == task_id
                )
            )
        ).one_or_none()
        require_visible(actor, row.user_id if row else None)
        assert row is not None
        return TaskState(row.id, row.user_id, _lease_state(row))

    async def _drive(
        self,
        actor: Actor,
        task_id: str,
        reason: Reason,
        *,
        values: dict[str, Any] | None = None,
        before: Sequence[NewEvent] = (),
        note: str = "",
    ) -> Task:
        """A transition on behalf of the actor: a worker must hold the lease, an owner must own it."""
        async with self._db.transaction() as conn:
            row = await self._lock(conn, task_id)
            require_visible(actor, row.user_id if row else None)
            if actor.worker is not None:
                if row.status in states.TERMINAL:
                    states.transition(row.status, reason)  # raises TASK_ENDED
                leases.require_holder(_lease_state(row), actor.lease_id or "", actor.worker)
            moved, events = await self._move(
                conn, row, reason, note=note, worker=actor.worker, before=before, values=values
            )
        self._publish(task_id, events)
        return moved

    # -- tasks --------------------------------------------------------------------------------

    async def create(self, new: NewTask, key: RequestKey | None, seed: Seeder | None = None) -> Task:
        """Inserts a queued task with its first status event (seq 1), then whatever `seed`
        writes in the same transaction (the first plan: its event is seq 2). A repeat of a
        request with a request_id (`key`) returns the task the first one created, as it is now,
        seeding nothing."""
        task_id = str(uuid.uuid4())
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, task_id)
            if first is not None:
                row = (
                    await conn.execute(sa.select(task).where(task.c.id == first, task.c.user_id == new.user_id))
                ).one_or_none()
                if row is None:
                    raise not_found("task")
                return _task(row)
            return await self.insert(conn, new, seed, task_id=task_id)

    async def insert(
        self, conn: AsyncConnection, new: NewTask, seed: Seeder | None = None, *, task_id: str | None = None
    ) -> Task:
        """`create` in the caller's transaction (the scheduler fires a schedule in its own). A
        fired task is unique by its schedule and due time: a second firing of the same due time
        returns the first task, however late it comes."""
        if new.session_id is not None:
            await self._touch_session(conn, new.user_id, new.session_id)
        statement = insert(task).values(
            id=task_id or str(uuid.uuid4()),
            user_id=new.user_id,
            agent_id=new.agent_id,
            team_id=new.team_id,
            session_id=new.session_id,
            trigger_source=new.trigger_source,
            origin_skill_id=new.origin_skill_id,
            title=new.title,
            inputs=new.inputs,
            status=str(Status.QUEUED),
            is_pinned=False,
            is_archived=False,
            last_seq=0,
            state_version=1,
            version=1,
            schedule_id=new.schedule_id,
            scheduled_at=new.scheduled_at,
        )
        if new.schedule_id is not None:
            statement = statement.on_conflict_do_nothing(
                index_elements=[task.c.schedule_id, task.c.scheduled_at], index_where=task.c.schedule_id.is_not(None)
            )
        inserted: str | None = (await conn.execute(statement.returning(task.c.id))).scalar_one_or_none()
        if inserted is None:
            fired = (
                await conn.execute(
                    sa.select(task).where(
                        task.c.schedule_id == new.schedule_id, task.c.scheduled_at == new.scheduled_at
                    )
                )
            ).one()
            return _task(fired)
        seeded = list(await seed(conn, inserted)) if seed is not None else []
        await self._append(conn, inserted, [states.status_event(None, Reason.CREATED), *seeded], notify=False)
        created = (await conn.execute(sa.select(task).where(task.c.id == inserted))).one()
        return _task(created)

    @staticmethod
    async def _touch_session(conn: AsyncConnection, user_id: str, session_id: str) -> None:
        """The session must be the caller's. Its row stays locked to the end of the transaction,
        so a concurrent DeleteSession waits and then sees the new task; its update_time moves."""
        found = (
            await conn.execute(
                sa.update(session)
                .where(session.c.id == session_id, session.c.user_id == user_id)
                .values(updated_at=sa.func.now())
                .returning(session.c.id)
            )
        ).one_or_none()
        if found is None:
            raise invalid("task.session_id", "names no session of yours", reason="SESSION_NOT_FOUND")

    @staticmethod
    async def count_in_session(conn: AsyncConnection, user_id: str, session_id: str) -> int:
        count: int = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(task)
                .where(task.c.user_id == user_id, task.c.session_id == session_id)
            )
        ).scalar_one()
        return count

    @staticmethod
    async def archive_session_tasks(conn: AsyncConnection, user_id: str, session_id: str) -> int:
        """A force-deleted session's tasks: archived and detached, never deleted (their events,
        plan, context, memory and artifacts stay). An edit, like UpdateTask: the etag moves."""
        mine = (task.c.user_id == user_id, task.c.session_id == session_id)
        # Several rows, so in id order (an UPDATE would lock them in whatever order it scans).
        await conn.execute(sa.select(task.c.id).where(*mine).order_by(task.c.id).with_for_update(key_share=True))
        result = await conn.execute(
            sa.update(task).where(*mine).values(is_archived=True, session_id=None, **bumped(task))
        )
        return int(result.rowcount)

    async def get(self, actor: Actor, task_id: str) -> Task:
        async with self._db.connection() as conn:
            row = (await conn.execute(sa.select(task).where(task.c.id == task_id))).one_or_none()
        require_visible(actor, row.user_id if row else None)
        return _task(row)

    async def page(self, where: TaskFilter, page: Rows[Task, TaskCursor]) -> None:
        """The sidebar order: pinned first, then most recently active, newest first (keyset)."""
        query = sa.select(task).where(task.c.user_id == where.user_id)
        if where.archived is not None:
            query = query.where(task.c.is_archived == where.archived)
        if where.statuses:
            query = query.where(task.c.status.in_(where.statuses))
        if where.agent_id:
            query = query.where(task.c.agent_id == where.agent_id)
        if where.session_id:
            query = query.where(task.c.session_id == where.session_id)
        after = page.after
        if after is not None:
            query = query.where(
                sa.tuple_(task.c.is_pinned, task.c.last_active_at, task.c.id)
                < sa.tuple_(
                    sa.literal(after.is_pinned),
                    sa.literal(after.last_active_at, task.c.last_active_at.type),
                    sa.literal(after.id, task.c.id.type),
                )
            )
        query = query.order_by(task.c.is_pinned.desc(), task.c.last_active_at.desc(), task.c.id.desc())
        async with self._db.connection() as conn:
            await read_page(conn, query, page, _task)

    async def update(self, user_id: str, task_id: str, changes: dict[str, Any], etag: str) -> Task:
        async with self._db.transaction() as conn:
            row = await self._lock(conn, task_id)
            require_visible(Actor(user_id=user_id), row.user_id if row else None)
            check_etag(etag, row.version, "task")
            updated = (
                await conn.execute(
                    sa.update(task).where(task.c.id == task_id).values(**changes, **bumped(task)).returning(task)
                )
            ).one()
        return _task(updated)

    async def cancel(self, user_id: str, task_id: str, note: str) -> Task:
        """Idempotent: a cancelled task is returned as it is, with no second event."""
        async with self._db.transaction() as conn:
            row = await self._lock(conn, task_id)
            require_visible(Actor(user_id=user_id), row.user_id if row else None)
            if row.status == Status.CANCELLED:
                return _task(row)
            moved, events = await self._move(conn, row, Reason.CANCELLED, note=note)
        self._publish(task_id, events)
        return moved

    # -- leases -------------------------------------------------------------------------------

    async def claim(
        self,
        worker: str,
        agent_ids: Sequence[str],
        limit: int,
        lease_s: float,
        accept: Callable[[Task], bool] = lambda task: True,
    ) -> list[ClaimedTask]:
        """Oldest queued tasks first; `SKIP LOCKED` so concurrent claimers never share a task.
        The claim ends at the first task `accept` refuses (the answer would not fit in one
        message): that task and the rest stay queued."""
        await self.expire_leases(agent_ids=agent_ids)
        claimed: list[ClaimedTask] = []
        published: list[tuple[str, list[Event]]] = []
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(
                    sa.select(task, _LIVE)
                    .where(task.c.status == str(Status.QUEUED), task.c.agent_id.in_(agent_ids))
                    .order_by(task.c.created_at, task.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True, key_share=True)
                )
            ).all()
            for row in rows:
                if not accept(_task(row)):
                    break
                lease_id = str(uuid.uuid4())
                moved, events = await self._move(
                    conn,
                    row,
                    Reason.CLAIMED,
                    worker=worker,
                    values={"lease_id": lease_id, "lease_holder": worker},
                    lease_s=lease_s,
                )
                claimed.append(ClaimedTask(moved, lease_id, events[-1].created_at + timedelta(seconds=lease_s)))
                published.append((row.id, events))
        for task_id, events in published:
            self._publish(task_id, events)
        return claimed

    async def renew(self, worker: str, task_id: str, lease_id: str, lease_s: float) -> datetime:
        async with self._db.transaction() as conn:
            row = await self._lock(conn, task_id)
            require_visible(Actor(worker=worker), row.user_id if row else None)
            leases.require_holder(_lease_state(row), lease_id, worker)
            expires: datetime = (
                await conn.execute(
                    sa.update(task)
                    .where(task.c.id == task_id)
                    .values(lease_expires_at=sa.func.clock_timestamp() + timedelta(seconds=lease_s))
                    .returning(task.c.lease_expires_at)
                )
            ).scalar_one()
        return expires

    async def expire_leases(self, *, agent_ids: Sequence[str] | None = None, limit: int = 100) -> int:
        """Puts running tasks whose lease ran out back to queued, each with a system event that
        says so. Every replica runs it; `SKIP LOCKED` keeps them from doing the same task twice."""
        query = sa.select(task, _LIVE).where(
            task.c.status == str(Status.RUNNING), task.c.lease_expires_at <= sa.func.now()
        )
        if agent_ids is not None:
            query = query.where(task.c.agent_id.in_(agent_ids))
        published: list[tuple[str, list[Event]]] = []
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(
                    query.order_by(task.c.lease_expires_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True, key_share=True)
                )
            ).all()
            for row in rows:
                _, events = await self._move(conn, row, Reason.LEASE_EXPIRED, worker=row.lease_holder)
                published.append((row.id, events))
        for task_id, events in published:
            self._publish(task_id, events)
        return len(rows)

    async def finish(self, actor: Actor, task_id: str, result: dict[str, Any]) -> Task:
        return await self._drive(actor, task_id, Reason.FINISHED, values={"result": result})

    async def fail(self, actor: Actor, task_id: str, error: dict[str, Any]) -> Task:
        return await self._drive(actor, task_id, Reason.FAILED, values={"error": error})

    async def request_input(self, actor: Actor, task_id: str, question: NewEvent) -> Task:
        return await self._drive(actor, task_id, Reason.INPUT_REQUESTED, before=[question])

    async def provide_input(self, actor: Actor, task_id: str, answer: NewEvent) -> Task:
        return await self._drive(actor, task_id, Reason.INPUT_PROVIDED, before=[answer])
