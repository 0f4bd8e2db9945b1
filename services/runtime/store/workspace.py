"""A task's plan, context and memory (SQLAlchemy Core).

Plan changes go through `TaskStore.locked_write`: the task row is locked, the plan row written
and the `plan` event appended in one transaction, so the stream shows every change in commit
order. Context and memory appends no event: they lock only their own row (never the task row,
which the event log's commit lane needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.contract.steps import PlanStep
from nexus.kit import paging
from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import InvalidArgument
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from nexus.kit.validation import JSON
from services.runtime.domain import context as ctx
from services.runtime.domain import memory as mem
from services.runtime.domain import plan as plans
from services.runtime.domain import writers
from services.runtime.domain.events import NewEvent
from services.runtime.domain.tasks import Actor
from services.runtime.store.artifacts import ArtifactStore
from services.runtime.store.tables import task, task_context, task_memory, task_plan
from services.runtime.store.tasks import Seeder, TaskState, TaskStore


@dataclass(frozen=True)
class HitCursor:
    """The search order: word similarity, then similarity, then task id, best first."""

    score: float
    tiebreak: float
    task_id: paging.UUID


def _plan(task_id: str, row: Any) -> plans.Plan:
    if row is None:
        return plans.Plan(task_id, (), 0)
    return plans.Plan(task_id, tuple(PlanStep.from_json(s) for s in row.steps), row.version, row.updated_at)


def _context(task_id: str, row: Any) -> ctx.Context:
    if row is None:
        return ctx.Context(task_id, {}, (), 0)
    return ctx.Context(task_id, row.variables, tuple(row.active_files), row.version, row.updated_at)


def _memory(task_id: str, row: Any) -> mem.Memory:
    if row is None:
        return mem.Memory(task_id, "", (), None, 0)
    return mem.Memory(
        task_id, row.summary_text, tuple(row.key_takeaways), row.vector_doc_id, row.version, row.updated_at
    )


def _hit(row: Any) -> mem.Hit:
    return mem.Hit(_memory(row.task_id, row), row.score, row.tiebreak, row.task_title, row.task_is_archived)


def hit_cursor(hit: mem.Hit) -> HitCursor:
    """The keyset after `hit` in the search order."""
    return HitCursor(hit.score, hit.tiebreak, paging.UUID(hit.memory.task_id))


class WorkspaceStore:
    def __init__(self, db: Database, tasks: TaskStore) -> None:
        self._db = db
        self._tasks = tasks

    # -- plan ---------------------------------------------------------------------------------

    async def get_plan(self, actor: Actor, task_id: str) -> plans.Plan:
        async with self._db.connection() as conn:
            await TaskStore.read_state(conn, actor, task_id)
            row = (await conn.execute(sa.select(task_plan).where(task_plan.c.task_id == task_id))).one_or_none()
        return _plan(task_id, row)

    async def set_plan(self, actor: Actor, task_id: str, steps: Sequence[PlanStep], etag: str) -> plans.Plan:
        async def write(conn: AsyncConnection, state: TaskState) -> tuple[plans.Plan, NewEvent]:
            writers.require_plan_writer(actor, state.lease)
            current = await self._current_plan(conn, task_id, etag)
            saved = await self._save_plan(conn, task_id, tuple(steps), current.version + 1)
            return saved, plans.set_event(saved.steps, saved.version)

        return await self._tasks.locked_write(actor, task_id, write)

    async def update_step(
        self, actor: Actor, task_id: str, step_id: str, status: str, output: dict[str, JSON] | None, etag: str
    ) -> plans.Plan:
        async def write(conn: AsyncConnection, state: TaskState) -> tuple[plans.Plan, NewEvent]:
            writers.require_plan_writer(actor, state.lease)
            current = await self._current_plan(conn, task_id, etag)
            before, after = plans.update_step(current, step_id, status, output)
            steps = plans.replace_step(current.steps, after)
            saved = await self._save_plan(conn, task_id, steps, current.version + 1)
            return saved, plans.step_event(steps, before, after, saved.version)

        return await self._tasks.locked_write(actor, task_id, write)

    def seeder(self, steps: Sequence[PlanStep], variables: dict[str, JSON]) -> Seeder | None:
        """Writes a new task's first plan and variables (version 1) inside the transaction that
        creates the task, so no worker can claim the task before they exist."""
        if not steps and not variables:
            return None

        async def seed(conn: AsyncConnection, task_id: str) -> list[NewEvent]:
            events: list[NewEvent] = []
            if steps:
                saved = await self._save_plan(conn, task_id, tuple(steps), 1)
                events.append(plans.set_event(saved.steps, saved.version))
            if variables:
                await conn.execute(
                    insert(task_context).values(
                        task_id=task_id, variables=variables, active_files=[], version=1, updated_at=sa.func.now()
                    )
                )
            return events

        return seed

    @staticmethod
    async def _current_plan(conn: AsyncConnection, task_id: str, etag: str) -> plans.Plan:
        # The task row is locked (locked_write): plan writes of one task are serialized by it.
        row = (await conn.execute(sa.select(task_plan).where(task_plan.c.task_id == task_id))).one_or_none()
        current = _plan(task_id, row)
        check_etag(etag, current.version, "plan")
        return current

    @staticmethod
    async def _save_plan(conn: AsyncConnection, task_id: str, steps: tuple[PlanStep, ...], version: int) -> plans.Plan:
        values = {
            "steps": plans.steps_json(steps),
            "current_step_index": plans.current_step_index(steps),
            "version": version,
            "updated_at": sa.func.now(),
        }
        row = (
            await conn.execute(
                insert(task_plan)
                .values(task_id=task_id, **values)
                .on_conflict_do_update(index_elements=[task_plan.c.task_id], set_=values)
                .returning(task_plan)
            )
        ).one()
        return _plan(task_id, row)

    # -- context ------------------------------------------------------------------------------

    async def get_context(self, actor: Actor, task_id: str) -> ctx.Context:
        async with self._db.connection() as conn:
            await TaskStore.read_state(conn, actor, task_id)
            row = (await conn.execute(sa.select(task_context).where(task_context.c.task_id == task_id))).one_or_none()
        return _context(task_id, row)

    async def patch_context(self, actor: Actor, task_id: str, patch: ctx.ContextPatch) -> ctx.Context:
        async with self._db.transaction() as conn:
            state = await TaskStore.read_state(conn, actor, task_id)
            writers.require_context_writer(actor, state.lease)
            current = await self._lock_singleton(conn, task_context, task_id, {"variables": {}, "active_files": []})
            context = _context(task_id, current)
            check_etag(patch.etag, context.version, "context")
            if patch.add_files:
                found = await ArtifactStore.existing_ids(conn, task_id, patch.add_files)
                problems = ctx.unknown_files(patch.add_files, found)
                if problems:
                    raise InvalidArgument(
                        f"{problems[0].field}: {problems[0].description}",
                        reason="ARTIFACT_NOT_FOUND",
                        violations=problems,
                    )
            variables, files = ctx.apply(context, patch)
            row = (
                await conn.execute(
                    sa.update(task_context)
                    .where(task_context.c.task_id == task_id)
                    .values(variables=variables, active_files=list(files), **bumped(task_context))
                    .returning(task_context)
                )
            ).one()
        return _context(task_id, row)

    @staticmethod
    async def _lock_singleton(conn: AsyncConnection, table: sa.Table, task_id: str, empty: dict[str, Any]) -> Any:
        """The task's row of `table`, created empty (version 0) if missing, locked to the end of
        the transaction, so concurrent first writes serialize like later ones."""
        await conn.execute(
            insert(table).values(task_id=task_id, version=0, **empty).on_conflict_do_nothing(index_elements=["task_id"])
        )
        return (await conn.execute(sa.select(table).where(table.c.task_id == task_id).with_for_update())).one()

    # -- memory -------------------------------------------------------------------------------

    async def get_memory(self, actor: Actor, task_id: str) -> mem.Memory:
        async with self._db.connection() as conn:
            await TaskStore.read_state(conn, actor, task_id)
            row = (await conn.execute(sa.select(task_memory).where(task_memory.c.task_id == task_id))).one_or_none()
        return _memory(task_id, row)

    async def put_memory(self, actor: Actor, memory: mem.Memory, etag: str) -> mem.Memory:
        task_id = memory.task_id
        async with self._db.transaction() as conn:
            state = await TaskStore.read_state(conn, actor, task_id)
            writers.require_owner_or_holder(actor, state.lease)
            current = await self._lock_singleton(conn, task_memory, task_id, {"user_id": state.user_id})
            check_etag(etag, current.version, "memory")
            row = (
                await conn.execute(
                    sa.update(task_memory)
                    .where(task_memory.c.task_id == task_id)
                    .values(
                        user_id=state.user_id,
                        summary_text=memory.summary_text,
                        key_takeaways=list(memory.key_takeaways),
                        vector_doc_id=memory.vector_doc_id,
                        search_text=mem.document(memory.summary_text, memory.key_takeaways),
                        **bumped(task_memory),
                    )
                    .returning(task_memory)
                )
            ).one()
        return _memory(task_id, row)

    async def search_memories(self, user_id: str, query: str, page: Rows[mem.Hit, HitCursor]) -> None:
        """The caller's memories (archived tasks included) whose text contains the query's
        trigrams in some extent (`%>`, word similarity ≥ MIN_SCORE, served by the GIN index),
        best first: word similarity, then similarity, then task id (the keyset of the pages)."""
        q = mem.search_text(query)
        text = task_memory.c.search_text
        inner = (
            sa.select(
                task_memory,
                task.c.title.label("task_title"),
                task.c.is_archived.label("task_is_archived"),
                sa.cast(sa.func.word_similarity(q, text), sa.Float).label("score"),
                sa.cast(sa.func.similarity(q, text), sa.Float).label("tiebreak"),
            )
            .join(task, task.c.id == task_memory.c.task_id)
            .where(task_memory.c.user_id == user_id, text.op("%>")(q))
            .subquery()
        )
        query_ = sa.select(inner)
        after = page.after
        if after is not None:
            query_ = query_.where(
                sa.tuple_(inner.c.score, inner.c.tiebreak, inner.c.task_id)
                < sa.tuple_(
                    sa.literal(after.score, sa.Float),
                    sa.literal(after.tiebreak, sa.Float),
                    sa.literal(after.task_id, inner.c.task_id.type),
                )
            )
        query_ = query_.order_by(inner.c.score.desc(), inner.c.tiebreak.desc(), inner.c.task_id.desc())
        async with self._db.transaction() as conn:
            await conn.execute(
                sa.select(sa.func.set_config("pg_trgm.word_similarity_threshold", str(mem.MIN_SCORE), True))
            )
            await read_page(conn, query_, page, _hit)
