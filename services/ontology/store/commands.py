"""Slash commands: a trigger that starts a skill. System commands are global; a user's own are
private to them, and a system command shadows a user's command with its trigger."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    not_found,
)
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.ontology.domain import access, command_line
from services.ontology.domain.access import Viewer
from services.ontology.domain.models import Command, Ownership, Skill, apply_mask
from services.ontology.store import snapshots
from services.ontology.store.tables import command_of, command_t, skill_of, skill_t
from services.ontology.store.visibility import command_visible, owned

# pg_advisory_xact_lock(class, key): serializes command creation per trigger, so a user command
# and a system command with one trigger cannot both be created by racing transactions.
_TRIGGER_LOCK_CLASS = 0x6F6E74  # "ont"
_OWNER_KEY = sa.func.coalesce(command_t.c.owner_user_id, "")


@dataclass(frozen=True)
class CommandCursor:
    """The commands' order: by trigger, then owner ("" for the system command, which sorts first)."""

    trigger: str
    owner_user_id: str


def command_cursor(command: Command) -> CommandCursor:
    return CommandCursor(command.trigger, command.owner_user_id or "")


@dataclass(frozen=True)
class CommandFilter:
    prefix: str
    agent_id: str
    ownership: Ownership


def _owned_by(owner_user_id: str | None) -> sa.ColumnElement[bool]:
    column = command_t.c.owner_user_id
    return column.is_(None) if owner_user_id is None else column == owner_user_id


async def _visible(conn: AsyncConnection, viewer: Viewer, trigger: str) -> Command | None:
    """The command the caller runs with this trigger: a system command wins over the caller's
    own (which a later system command may shadow)."""
    row = (
        await conn.execute(
            sa.select(command_t)
            .where(command_t.c.trigger == trigger, command_visible(viewer))
            .order_by(command_t.c.owner_user_id.is_not(None))
            .limit(1)
        )
    ).first()
    return command_of(row) if row is not None else None


async def _own(conn: AsyncConnection, viewer: Viewer, trigger: str, *, lock: bool = False) -> Command:
    """The caller's own command (a system one for a service token) with this trigger."""
    query = sa.select(command_t).where(command_t.c.trigger == trigger, _owned_by(viewer.user_id))
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is not None:
        found = command_of(row)
        if not access.can_change_command(viewer, found):
            raise PermissionDenied(
                f"changing a system command needs scope {access.ADMIN_SCOPE!r}", reason="COMMAND_READ_ONLY"
            )
        return found
    if await _visible(conn, viewer, trigger) is not None:
        raise PermissionDenied("only an admin may change a system command", reason="COMMAND_READ_ONLY")
    raise not_found("command")


async def _check_target(conn: AsyncConnection, command: Command, field: str) -> None:
    row = (await conn.execute(sa.select(skill_t).where(skill_t.c.id == command.target_skill_id))).first()
    target = skill_of(row) if row is not None else None
    if target is None or (command.owner_user_id is not None and not access.can_target(command.owner_user_id, target)):
        raise NotFound("the target skill does not exist", reason="SKILL_NOT_FOUND")
    if not access.can_target(command.owner_user_id, target):
        raise InvalidArgument(
            "a system command must start a system skill",
            violations=[FieldViolation(f"{field}.target_skill_id", "must name a system skill")],
        )
    if target.agent_id != command.agent_id:
        raise InvalidArgument(
            "the target skill belongs to another agent",
            reason="SKILL_OF_ANOTHER_AGENT",
            violations=[FieldViolation(f"{field}.target_skill_id", "must name a skill of the command's agent")],
        )


class CommandStore:
    def __init__(self, db: Database, requests: RequestLog) -> None:
        self._db = db
        self._requests = requests

    async def get(self, viewer: Viewer, trigger: str) -> Command:
        async with self._db.connection() as conn:
            found = await _visible(conn, viewer, trigger)
        if found is None:
            raise not_found("command")
        return found

    async def page(self, viewer: Viewer, where: CommandFilter, page: Rows[Command, CommandCursor]) -> None:
        query = (
            sa.select(command_t)
            .where(command_visible(viewer), owned(viewer, where.ownership, command_t.c.owner_user_id))
            .order_by(command_t.c.trigger, _OWNER_KEY)
        )
        if where.prefix:
            query = query.where(command_t.c.trigger.startswith(where.prefix, autoescape=True))
        if where.agent_id:
            query = query.where(command_t.c.agent_id == where.agent_id)
        if page.after is not None:
            after = page.after
            query = query.where(
                sa.tuple_(command_t.c.trigger, _OWNER_KEY) > sa.tuple_(after.trigger, after.owner_user_id)
            )
        async with self._db.connection() as conn:
            await read_page(conn, query, page, command_of)

    async def create(self, viewer: Viewer, command: Command, key: RequestKey | None) -> Command:
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, command.trigger)
            if first is not None:
                return await _own(conn, viewer, first)
            await conn.execute(
                sa.select(sa.func.pg_advisory_xact_lock(_TRIGGER_LOCK_CLASS, sa.func.hashtext(command.trigger)))
            )
            await snapshots.lock_agents(conn, [command.agent_id])
            if command.owner_user_id is not None:
                system = await _visible(conn, Viewer(subject="", user_id=None), command.trigger)
                if system is not None:
                    raise AlreadyExists("a system command already uses this trigger", reason="TRIGGER_RESERVED")
            await _check_target(conn, command, "command")
            row = (
                await conn.execute(
                    pg_insert(command_t)
                    .values(
                        trigger=command.trigger,
                        owner_user_id=command.owner_user_id,
                        agent_id=command.agent_id,
                        target_skill_id=command.target_skill_id,
                        description=command.description,
                    )
                    .on_conflict_do_nothing()
                    .returning(*command_t.c)
                )
            ).first()
            if row is None:
                raise AlreadyExists("you already have a command with this trigger", reason="COMMAND_ALREADY_EXISTS")
            await snapshots.refresh(conn, [command.agent_id])
            return command_of(row)

    async def update(self, viewer: Viewer, patch: Command, paths: set[str], etag: str) -> Command:
        async with self._db.transaction() as conn:
            found = await _own(conn, viewer, patch.trigger)
            new = apply_mask(found, patch, paths)
            agents = {found.agent_id, new.agent_id}
            await snapshots.lock_agents(conn, agents)
            current = await _own(conn, viewer, patch.trigger, lock=True)
            if current.agent_id != found.agent_id:
                raise Aborted("the command changed concurrently; retry", reason="CONCURRENT_UPDATE")
            check_etag(etag, current.version, "command")
            new = apply_mask(current, patch, paths)
            await _check_target(conn, new, "command")
            row = (
                await conn.execute(
                    command_t.update()
                    .where(command_t.c.trigger == current.trigger, _owned_by(current.owner_user_id))
                    .values(
                        agent_id=new.agent_id,
                        target_skill_id=new.target_skill_id,
                        description=new.description,
                        **bumped(command_t),
                    )
                    .returning(*command_t.c)
                )
            ).one()
            await snapshots.refresh(conn, agents)
            return command_of(row)

    async def delete(self, viewer: Viewer, trigger: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            found = await _own(conn, viewer, trigger)
            await snapshots.lock_agents(conn, [found.agent_id])
            current = await _own(conn, viewer, trigger, lock=True)
            check_etag(etag, current.version, "command")
            await conn.execute(
                command_t.delete().where(command_t.c.trigger == trigger, _owned_by(current.owner_user_id))
            )
            await snapshots.refresh(conn, {current.agent_id, found.agent_id})

    async def command_and_skill(self, viewer: Viewer, trigger: str) -> tuple[Command, Skill]:
        """What a trigger starts for this caller, read in one snapshot. An unknown trigger is
        NOT_FOUND with the closest visible trigger in `did_you_mean`."""
        async with self._db.connection() as conn:
            found = await _visible(conn, viewer, trigger)
            if found is None:
                triggers = (
                    await conn.execute(
                        sa.select(command_t.c.trigger).where(command_visible(viewer)).distinct().limit(10_000)
                    )
                ).scalars()
                hint = command_line.suggest(trigger, triggers)
                raise NotFound(
                    "no command has this trigger" + (f"; did you mean {hint}?" if hint else ""),
                    reason="COMMAND_NOT_FOUND",
                    metadata={"did_you_mean": hint} if hint else {},
                )
            row = (await conn.execute(sa.select(skill_t).where(skill_t.c.id == found.target_skill_id))).one()
        target = skill_of(row)
        if not access.can_target(found.owner_user_id, target):
            # A public skill its creator made private again: the command stays but cannot run.
            raise FailedPrecondition("the command's skill is no longer available to you", reason="SKILL_UNAVAILABLE")
        return found, target
