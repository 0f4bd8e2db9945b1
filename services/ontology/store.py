"""Every SQL statement of the ontology service (SQLAlchemy Core on the `ontology` role).

Consistency of `capabilities_snapshot`: every write to an agent's skills or commands first locks
the agent row (FOR NO KEY UPDATE, which still lets foreign-key checks through), then reads the
agent's skills and commands and rewrites the snapshot before it commits. Writers of one agent are
serialized by that lock, and each reads after the previous one committed, so the last snapshot
always describes every committed change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database
from nexus.kit.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from nexus.kit.protos import etag as kit_etag
from nexus.kit.validation import JSON
from services.ontology.domain import access, capabilities, command_line, snapshot
from services.ontology.domain.access import Viewer
from services.ontology.domain.definition import SkillDefinition
from services.ontology.domain.models import (
    Agent,
    Command,
    Idempotency,
    Ownership,
    Participant,
    Skill,
    Team,
    TeamStatus,
    apply_mask,
)

SCHEMA = "ontology"
metadata = sa.MetaData(schema=SCHEMA)
_TS = sa.TIMESTAMP(timezone=True)


def _times() -> list[sa.Column[Any]]:
    return [
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("create_time", _TS, nullable=False),
        sa.Column("update_time", _TS, nullable=False),
    ]


agent_t = sa.Table(
    "agent",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("avatar_url", sa.Text),
    sa.Column("role_prompt", sa.Text),
    sa.Column("capabilities_snapshot", postgresql.JSONB),
    sa.Column("snapshot_time", _TS),
    *_times(),
)
skill_t = sa.Table(
    "skill",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("agent_id", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("definition", postgresql.JSONB),
    sa.Column("created_by_user_id", sa.Text, nullable=True),
    sa.Column("is_public", sa.Boolean),
    *_times(),
)
command_t = sa.Table(
    "command",
    metadata,
    sa.Column("id", postgresql.UUID, primary_key=True, server_default=sa.FetchedValue()),
    sa.Column("trigger", sa.Text),
    sa.Column("owner_user_id", sa.Text, nullable=True),
    sa.Column("agent_id", sa.Text),
    sa.Column("target_skill_id", sa.Text),
    sa.Column("description", sa.Text),
    *_times(),
)
team_t = sa.Table(
    "team",
    metadata,
    sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("config", postgresql.JSONB),
    sa.Column("owner_user_id", sa.Text, nullable=True),
    *_times(),
)
participant_t = sa.Table(
    "team_participant",
    metadata,
    sa.Column("team_id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("agent_id", sa.Text),
    sa.Column("role", sa.Text),
    sa.Column("config", postgresql.JSONB),
)
request_log_t = sa.Table(
    "request_log",
    metadata,
    sa.Column("principal", sa.Text, primary_key=True),
    sa.Column("method", sa.Text, primary_key=True),
    sa.Column("request_id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("request_hash", sa.Text),
    sa.Column("resource_id", sa.Text, nullable=True),
    sa.Column("create_time", _TS),
)

# pg_advisory_xact_lock(class, key): serializes command creation per trigger, so a user command
# and a system command with one trigger cannot both be created by racing transactions.
_TRIGGER_LOCK_CLASS = 0x6F6E74  # "ont"


@dataclass
class CatalogChanges:
    """What a catalog load changed (all zero when the database already matched the file)."""

    agents: int = 0
    skills: int = 0
    commands: int = 0
    teams: int = 0

    @property
    def total(self) -> int:
        return self.agents + self.skills + self.commands + self.teams


# -- rows → domain --------------------------------------------------------------------------------


def _agent(row: sa.Row[Any]) -> Agent:
    m = row._mapping
    return Agent(
        id=m["id"],
        name=m["name"],
        description=m["description"],
        avatar_url=m["avatar_url"],
        role_prompt=m["role_prompt"],
        snapshot=snapshot.Snapshot.from_json(m["capabilities_snapshot"], m["snapshot_time"]),
        create_time=m["create_time"],
        update_time=m["update_time"],
        revision=m["revision"],
    )


def _skill(row: sa.Row[Any]) -> Skill:
    m = row._mapping
    return Skill(
        id=m["id"],
        agent_id=m["agent_id"],
        name=m["name"],
        description=m["description"],
        definition=SkillDefinition.from_json(m["definition"]),
        created_by_user_id=m["created_by_user_id"],
        is_public=m["is_public"],
        create_time=m["create_time"],
        update_time=m["update_time"],
        revision=m["revision"],
    )


def _command(row: sa.Row[Any]) -> Command:
    m = row._mapping
    return Command(
        trigger=m["trigger"],
        agent_id=m["agent_id"],
        target_skill_id=m["target_skill_id"],
        description=m["description"],
        owner_user_id=m["owner_user_id"],
        create_time=m["create_time"],
        update_time=m["update_time"],
        revision=m["revision"],
    )


def _team(row: sa.Row[Any], participants: Sequence[Participant]) -> Team:
    m = row._mapping
    return Team(
        id=str(m["id"]),
        name=m["name"],
        description=m["description"],
        participants=tuple(participants),
        status=TeamStatus(m["status"]),
        config=m["config"],
        owner_user_id=m["owner_user_id"],
        create_time=m["create_time"],
        update_time=m["update_time"],
        revision=m["revision"],
    )


def _check_etag(etag: str, revision: int) -> None:
    if etag and etag != kit_etag(revision):
        raise Aborted("the resource changed since it was read; read it again", reason="ETAG_MISMATCH")


def _bumped() -> dict[str, Any]:
    return {"revision": sa.literal_column("revision") + 1, "update_time": sa.func.now()}


# -- visibility as SQL (the same rules as domain.access) ------------------------------------------


def _skill_visible(viewer: Viewer) -> sa.ColumnElement[bool]:
    if viewer.reads_all:
        return sa.true()
    visible = sa.or_(skill_t.c.created_by_user_id.is_(None), skill_t.c.is_public)
    if viewer.user_id is not None:
        visible = sa.or_(visible, skill_t.c.created_by_user_id == viewer.user_id)
    return visible


def _command_visible(viewer: Viewer) -> sa.ColumnElement[bool]:
    if viewer.user_id is None:
        return command_t.c.owner_user_id.is_(None)
    return sa.or_(command_t.c.owner_user_id.is_(None), command_t.c.owner_user_id == viewer.user_id)


def _team_visible(viewer: Viewer) -> sa.ColumnElement[bool]:
    if viewer.reads_all:
        return sa.true()
    if viewer.user_id is None:
        return team_t.c.owner_user_id.is_(None)
    return sa.or_(team_t.c.owner_user_id.is_(None), team_t.c.owner_user_id == viewer.user_id)


def _ownership(
    viewer: Viewer, ownership: Ownership, column: sa.ColumnElement[Any], public: sa.ColumnElement[bool] | None = None
) -> sa.ColumnElement[bool]:
    if ownership is Ownership.SYSTEM:
        return column.is_(None)
    if ownership is Ownership.MINE:
        return column == viewer.require_user()
    if ownership is Ownership.PUBLIC and public is not None:
        return sa.and_(column.is_not(None), public)
    return sa.true()


class OntologyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- shared ------------------------------------------------------------------------------------

    @staticmethod
    async def _claim(conn: AsyncConnection, idem: Idempotency | None) -> str | None:
        """None for a first request; for a repeated one, the id of what the first one created.
        A concurrent twin waits on the key until the first commits (or rolls back)."""
        if idem is None:
            return None
        claimed = await conn.execute(
            pg_insert(request_log_t)
            .values(
                principal=idem.principal,
                method=idem.method,
                request_id=idem.request_id,
                request_hash=idem.request_hash,
            )
            .on_conflict_do_nothing()
            .returning(request_log_t.c.request_id)
        )
        if claimed.first() is not None:
            return None
        row = (
            await conn.execute(
                sa.select(request_log_t.c.request_hash, request_log_t.c.resource_id).where(
                    request_log_t.c.principal == idem.principal,
                    request_log_t.c.method == idem.method,
                    request_log_t.c.request_id == idem.request_id,
                )
            )
        ).one()
        if row.request_hash != idem.request_hash:
            raise InvalidArgument(
                "request_id was already used for a different request",
                reason="REQUEST_ID_REUSED",
                violations=[FieldViolation("request_id", "was already used for a different request")],
            )
        if row.resource_id is None:
            raise Aborted("the first request with this request_id is still running; retry", reason="REQUEST_IN_FLIGHT")
        return str(row.resource_id)

    @staticmethod
    async def _remember(conn: AsyncConnection, idem: Idempotency | None, resource_id: str) -> None:
        if idem is None:
            return
        await conn.execute(
            request_log_t.update()
            .where(
                request_log_t.c.principal == idem.principal,
                request_log_t.c.method == idem.method,
                request_log_t.c.request_id == idem.request_id,
            )
            .values(resource_id=resource_id)
        )

    @staticmethod
    async def _lock_agents(conn: AsyncConnection, agent_ids: Iterable[str]) -> None:
        """Locks agent rows in id order (so two writers never wait on each other in a cycle);
        NOT_FOUND when one does not exist."""
        wanted = sorted(set(agent_ids))
        found = (
            (
                await conn.execute(
                    sa.select(agent_t.c.id)
                    .where(agent_t.c.id.in_(wanted))
                    .order_by(agent_t.c.id)
                    .with_for_update(key_share=True)
                )
            )
            .scalars()
            .all()
        )
        missing = [a for a in wanted if a not in set(found)]
        if missing:
            raise NotFound("the agent does not exist", reason="AGENT_NOT_FOUND", metadata={"agent_id": missing[0]})

    async def _refresh_snapshots(self, conn: AsyncConnection, agent_ids: Iterable[str]) -> None:
        """Recomputes the snapshots of these agents inside the caller's transaction."""
        ids = sorted(set(agent_ids))
        await self._lock_agents(conn, ids)
        for agent_id in ids:
            skills = (
                await conn.execute(
                    sa.select(skill_t).where(
                        skill_t.c.agent_id == agent_id,
                        sa.or_(skill_t.c.created_by_user_id.is_(None), skill_t.c.is_public),
                    )
                )
            ).all()
            commands = (
                await conn.execute(
                    sa.select(command_t).where(command_t.c.agent_id == agent_id, command_t.c.owner_user_id.is_(None))
                )
            ).all()
            snap = capabilities.build([_skill(r) for r in skills], [_command(r) for r in commands])
            await conn.execute(
                agent_t.update()
                .where(agent_t.c.id == agent_id)
                .values(capabilities_snapshot=snap.to_json(), snapshot_time=sa.func.clock_timestamp())
            )

    # -- agents ------------------------------------------------------------------------------------

    async def _agent_row(self, conn: AsyncConnection, agent_id: str, *, lock: bool = False) -> Agent:
        query = sa.select(agent_t).where(agent_t.c.id == agent_id)
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("the agent does not exist", reason="AGENT_NOT_FOUND")
        return _agent(row)

    async def get_agent(self, agent_id: str) -> Agent:
        async with self._db.connection() as conn:
            return await self._agent_row(conn, agent_id)

    async def list_agents(self, after: str | None, limit: int) -> list[Agent]:
        query = sa.select(agent_t).order_by(agent_t.c.id).limit(limit)
        if after is not None:
            query = query.where(agent_t.c.id > after)
        async with self._db.connection() as conn:
            return [_agent(r) for r in await conn.execute(query)]

    async def create_agent(self, agent: Agent, idem: Idempotency | None) -> Agent:
        async with self._db.transaction() as conn:
            first = await self._claim(conn, idem)
            if first is not None:
                return await self._agent_row(conn, first)
            row = (
                await conn.execute(
                    pg_insert(agent_t)
                    .values(
                        id=agent.id,
                        name=agent.name,
                        description=agent.description,
                        avatar_url=agent.avatar_url,
                        role_prompt=agent.role_prompt,
                    )
                    .on_conflict_do_nothing()
                    .returning(*agent_t.c)
                )
            ).first()
            if row is None:
                raise AlreadyExists("an agent with this id already exists", reason="AGENT_ALREADY_EXISTS")
            await self._remember(conn, idem, agent.id)
            return _agent(row)

    async def update_agent(self, patch: Agent, paths: set[str], etag: str) -> Agent:
        async with self._db.transaction() as conn:
            current = await self._agent_row(conn, patch.id, lock=True)
            _check_etag(etag, current.revision)
            new = apply_mask(current, patch, paths)
            row = (
                await conn.execute(
                    agent_t.update()
                    .where(agent_t.c.id == patch.id)
                    .values(
                        name=new.name,
                        description=new.description,
                        avatar_url=new.avatar_url,
                        role_prompt=new.role_prompt,
                        **_bumped(),
                    )
                    .returning(*agent_t.c)
                )
            ).one()
            return _agent(row)

    async def delete_agent(self, agent_id: str, etag: str, force: bool) -> None:
        async with self._db.transaction() as conn:
            current = await self._agent_row(conn, agent_id, lock=True)
            _check_etag(etag, current.revision)
            if not force:
                in_team = await conn.scalar(sa.select(sa.exists().where(participant_t.c.agent_id == agent_id)))
                if in_team:
                    raise FailedPrecondition(
                        "the agent is a participant of a team; remove it first or pass force", reason="AGENT_IN_TEAM"
                    )
                has_skills = await conn.scalar(sa.select(sa.exists().where(skill_t.c.agent_id == agent_id)))
                if has_skills:
                    raise FailedPrecondition(
                        "the agent has skills; delete them first or pass force", reason="AGENT_HAS_SKILLS"
                    )
            # Forced: the teams it was in lose it and need attention (any user may put any agent in
            # a private team, so teams must not be able to pin an agent in place).
            teams = (
                await conn.execute(
                    participant_t.delete()
                    .where(participant_t.c.agent_id == agent_id)
                    .returning(participant_t.c.team_id)
                )
            ).scalars()
            team_ids = sorted({str(t) for t in teams})
            if team_ids:
                await conn.execute(
                    team_t.update().where(team_t.c.id.in_(team_ids)).values(status=TeamStatus.ERROR.value, **_bumped())
                )
            # Skills and commands go with it (ON DELETE CASCADE).
            await conn.execute(agent_t.delete().where(agent_t.c.id == agent_id))

    # -- skills ------------------------------------------------------------------------------------

    async def _visible_skill(
        self, conn: AsyncConnection, viewer: Viewer, skill_id: str, *, lock: bool = False
    ) -> Skill:
        query = sa.select(skill_t).where(skill_t.c.id == skill_id, _skill_visible(viewer))
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("the skill does not exist", reason="SKILL_NOT_FOUND")
        return _skill(row)

    async def _changeable_skill(self, conn: AsyncConnection, viewer: Viewer, skill_id: str, etag: str) -> Skill:
        """The skill, locked along with its agent (agent first, the order every writer uses)."""
        found = await self._visible_skill(conn, viewer, skill_id)
        if not access.can_change_skill(viewer, found):
            raise PermissionDenied("only the skill's creator or an admin may change it", reason="SKILL_READ_ONLY")
        await self._lock_agents(conn, [found.agent_id])
        current = await self._visible_skill(conn, viewer, skill_id, lock=True)
        _check_etag(etag, current.revision)
        return current

    async def get_skill(self, viewer: Viewer, skill_id: str) -> Skill:
        async with self._db.connection() as conn:
            return await self._visible_skill(conn, viewer, skill_id)

    async def list_skills(
        self, viewer: Viewer, agent_id: str, ownership: Ownership, after: str | None, limit: int
    ) -> list[Skill]:
        query = (
            sa.select(skill_t)
            .where(
                _skill_visible(viewer),
                _ownership(viewer, ownership, skill_t.c.created_by_user_id, skill_t.c.is_public),
            )
            .order_by(skill_t.c.id)
            .limit(limit)
        )
        if agent_id:
            query = query.where(skill_t.c.agent_id == agent_id)
        if after is not None:
            query = query.where(skill_t.c.id > after)
        async with self._db.connection() as conn:
            return [_skill(r) for r in await conn.execute(query)]

    async def create_skill(self, viewer: Viewer, skill: Skill, idem: Idempotency | None) -> Skill:
        async with self._db.transaction() as conn:
            first = await self._claim(conn, idem)
            if first is not None:
                return await self._visible_skill(conn, viewer, first)
            await self._lock_agents(conn, [skill.agent_id])
            row = (
                await conn.execute(
                    pg_insert(skill_t)
                    .values(
                        id=skill.id,
                        agent_id=skill.agent_id,
                        name=skill.name,
                        description=skill.description,
                        definition=skill.definition.to_json(),
                        created_by_user_id=skill.created_by_user_id,
                        is_public=skill.is_public,
                    )
                    .on_conflict_do_nothing()
                    .returning(*skill_t.c)
                )
            ).first()
            if row is None:
                raise AlreadyExists("a skill with this id already exists", reason="SKILL_ALREADY_EXISTS")
            await self._remember(conn, idem, skill.id)
            await self._refresh_snapshots(conn, [skill.agent_id])
            return _skill(row)

    async def update_skill(self, viewer: Viewer, patch: Skill, paths: set[str], etag: str) -> Skill:
        async with self._db.transaction() as conn:
            current = await self._changeable_skill(conn, viewer, patch.id, etag)
            new = apply_mask(current, patch, paths)
            row = (
                await conn.execute(
                    skill_t.update()
                    .where(skill_t.c.id == patch.id)
                    .values(
                        name=new.name,
                        description=new.description,
                        definition=new.definition.to_json(),
                        is_public=new.is_public,
                        **_bumped(),
                    )
                    .returning(*skill_t.c)
                )
            ).one()
            await self._refresh_snapshots(conn, [current.agent_id])
            return _skill(row)

    async def delete_skill(self, viewer: Viewer, skill_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            current = await self._changeable_skill(conn, viewer, skill_id, etag)
            # The commands that start it go with it (ON DELETE CASCADE).
            await conn.execute(skill_t.delete().where(skill_t.c.id == skill_id))
            await self._refresh_snapshots(conn, [current.agent_id])

    # -- commands ----------------------------------------------------------------------------------

    async def _visible_command(self, conn: AsyncConnection, viewer: Viewer, trigger: str) -> Command | None:
        """The command the caller runs with this trigger: a system command wins over the
        caller's own (which a later system command may shadow)."""
        row = (
            await conn.execute(
                sa.select(command_t)
                .where(command_t.c.trigger == trigger, _command_visible(viewer))
                .order_by(command_t.c.owner_user_id.is_not(None))
                .limit(1)
            )
        ).first()
        return _command(row) if row is not None else None

    async def _own_command(self, conn: AsyncConnection, viewer: Viewer, trigger: str, *, lock: bool = False) -> Command:
        """The caller's own command (a system one for a service token) with this trigger."""
        owner = command_t.c.owner_user_id
        query = sa.select(command_t).where(
            command_t.c.trigger == trigger, owner.is_(None) if viewer.user_id is None else owner == viewer.user_id
        )
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is not None:
            found = _command(row)
            if not access.can_change_command(viewer, found):
                raise PermissionDenied(
                    f"changing a system command needs scope {access.ADMIN_SCOPE!r}", reason="COMMAND_READ_ONLY"
                )
            return found
        if await self._visible_command(conn, viewer, trigger) is not None:
            raise PermissionDenied("only an admin may change a system command", reason="COMMAND_READ_ONLY")
        raise NotFound("the command does not exist", reason="COMMAND_NOT_FOUND")

    async def _check_target(self, conn: AsyncConnection, command: Command, field: str) -> None:
        row = (await conn.execute(sa.select(skill_t).where(skill_t.c.id == command.target_skill_id))).first()
        target = _skill(row) if row is not None else None
        if target is None or (
            command.owner_user_id is not None and not access.can_target(command.owner_user_id, target)
        ):
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

    async def get_command(self, viewer: Viewer, trigger: str) -> Command:
        async with self._db.connection() as conn:
            found = await self._visible_command(conn, viewer, trigger)
        if found is None:
            raise NotFound("the command does not exist", reason="COMMAND_NOT_FOUND")
        return found

    async def list_commands(
        self,
        viewer: Viewer,
        prefix: str,
        agent_id: str,
        ownership: Ownership,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Command]:
        owner_key = sa.func.coalesce(command_t.c.owner_user_id, "")
        query = (
            sa.select(command_t)
            .where(_command_visible(viewer), _ownership(viewer, ownership, command_t.c.owner_user_id))
            .order_by(command_t.c.trigger, owner_key)
            .limit(limit)
        )
        if prefix:
            query = query.where(command_t.c.trigger.startswith(prefix, autoescape=True))
        if agent_id:
            query = query.where(command_t.c.agent_id == agent_id)
        if after is not None:
            query = query.where(sa.tuple_(command_t.c.trigger, owner_key) > sa.tuple_(*after))
        async with self._db.connection() as conn:
            return [_command(r) for r in await conn.execute(query)]

    async def create_command(self, viewer: Viewer, command: Command, idem: Idempotency | None) -> Command:
        async with self._db.transaction() as conn:
            first = await self._claim(conn, idem)
            if first is not None:
                return await self._own_command(conn, viewer, first)
            await conn.execute(
                sa.select(sa.func.pg_advisory_xact_lock(_TRIGGER_LOCK_CLASS, sa.func.hashtext(command.trigger)))
            )
            await self._lock_agents(conn, [command.agent_id])
            if command.owner_user_id is not None:
                system = await self._visible_command(conn, Viewer(subject="", user_id=None), command.trigger)
                if system is not None:
                    raise AlreadyExists("a system command already uses this trigger", reason="TRIGGER_RESERVED")
            await self._check_target(conn, command, "command")
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
            await self._remember(conn, idem, command.trigger)
            await self._refresh_snapshots(conn, [command.agent_id])
            return _command(row)

    async def update_command(self, viewer: Viewer, patch: Command, paths: set[str], etag: str) -> Command:
        async with self._db.transaction() as conn:
            found = await self._own_command(conn, viewer, patch.trigger)
            new = apply_mask(found, patch, paths)
            agents = {found.agent_id, new.agent_id}
            await self._lock_agents(conn, agents)
            current = await self._own_command(conn, viewer, patch.trigger, lock=True)
            if current.agent_id != found.agent_id:
                raise Aborted("the command changed concurrently; retry", reason="CONCURRENT_UPDATE")
            _check_etag(etag, current.revision)
            new = apply_mask(current, patch, paths)
            await self._check_target(conn, new, "command")
            row = (
                await conn.execute(
                    command_t.update()
                    .where(
                        command_t.c.trigger == current.trigger,
                        command_t.c.owner_user_id.is_(None)
                        if current.owner_user_id is None
                        else command_t.c.owner_user_id == current.owner_user_id,
                    )
                    .values(
                        agent_id=new.agent_id,
                        target_skill_id=new.target_skill_id,
                        description=new.description,
                        **_bumped(),
                    )
                    .returning(*command_t.c)
                )
            ).one()
            await self._refresh_snapshots(conn, agents)
            return _command(row)

    async def delete_command(self, viewer: Viewer, trigger: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            found = await self._own_command(conn, viewer, trigger)
            await self._lock_agents(conn, [found.agent_id])
            current = await self._own_command(conn, viewer, trigger, lock=True)
            _check_etag(etag, current.revision)
            await conn.execute(
                command_t.delete().where(
                    command_t.c.trigger == trigger,
                    command_t.c.owner_user_id.is_(None)
                    if current.owner_user_id is None
                    else command_t.c.owner_user_id == current.owner_user_id,
                )
            )
            await self._refresh_snapshots(conn, {current.agent_id, found.agent_id})

    async def command_and_skill(self, viewer: Viewer, trigger: str) -> tuple[Command, Skill]:
        """What a trigger starts for this caller, read in one snapshot. An unknown trigger is
        NOT_FOUND with the closest visible trigger in `did_you_mean`."""
        async with self._db.connection() as conn:
            found = await self._visible_command(conn, viewer, trigger)
            if found is None:
                triggers = (
                    await conn.execute(
                        sa.select(command_t.c.trigger).where(_command_visible(viewer)).distinct().limit(10_000)
                    )
                ).scalars()
                hint = command_line.suggest(trigger, triggers)
                raise NotFound(
                    "no command has this trigger" + (f"; did you mean {hint}?" if hint else ""),
                    reason="COMMAND_NOT_FOUND",
                    metadata={"did_you_mean": hint} if hint else {},
                )
            row = (await conn.execute(sa.select(skill_t).where(skill_t.c.id == found.target_skill_id))).one()
        target = _skill(row)
        if not access.can_target(found.owner_user_id, target):
            # A public skill its creator made private again: the command stays but cannot run.
            raise FailedPrecondition("the command's skill is no longer available to you", reason="SKILL_UNAVAILABLE")
        return found, target

    # -- teams -------------------------------------------------------------------------------------

    @staticmethod
    async def _participants(conn: AsyncConnection, team_ids: Sequence[str]) -> dict[str, list[Participant]]:
        rows = await conn.execute(
            sa.select(participant_t)
            .where(participant_t.c.team_id.in_(team_ids))
            .order_by(participant_t.c.team_id, participant_t.c.position)
        )
        out: dict[str, list[Participant]] = {t: [] for t in team_ids}
        for r in rows:
            out[str(r.team_id)].append(Participant(agent_id=r.agent_id, role=r.role, config=r.config))
        return out

    async def _visible_team(self, conn: AsyncConnection, viewer: Viewer, team_id: str, *, lock: bool = False) -> Team:
        query = sa.select(team_t).where(team_t.c.id == team_id, _team_visible(viewer))
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("the team does not exist", reason="TEAM_NOT_FOUND")
        return _team(row, (await self._participants(conn, [team_id]))[team_id])

    @staticmethod
    async def _write_participants(
        conn: AsyncConnection, team_id: str, participants: Sequence[Participant], field: str
    ) -> None:
        agent_ids = {p.agent_id for p in participants}
        found = set(
            (
                await conn.execute(
                    sa.select(agent_t.c.id)
                    .where(agent_t.c.id.in_(agent_ids))
                    .with_for_update(read=True, key_share=True)
                )
            ).scalars()
        )
        missing = [
            FieldViolation(f"{field}[{i}].agent_id", "names no agent")
            for i, p in enumerate(participants)
            if p.agent_id not in found
        ]
        if missing:
            raise NotFound("a participant's agent does not exist", reason="AGENT_NOT_FOUND", violations=missing)
        await conn.execute(participant_t.delete().where(participant_t.c.team_id == team_id))
        if participants:
            await conn.execute(
                participant_t.insert(),
                [
                    {"team_id": team_id, "position": i, "agent_id": p.agent_id, "role": p.role, "config": p.config}
                    for i, p in enumerate(participants)
                ],
            )

    async def get_team(self, viewer: Viewer, team_id: str) -> Team:
        async with self._db.connection() as conn:
            return await self._visible_team(conn, viewer, team_id)

    async def list_teams(self, viewer: Viewer, ownership: Ownership, after: str | None, limit: int) -> list[Team]:
        query = (
            sa.select(team_t)
            .where(_team_visible(viewer), _ownership(viewer, ownership, team_t.c.owner_user_id))
            .order_by(team_t.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(team_t.c.id > after)
        async with self._db.connection() as conn:
            rows = (await conn.execute(query)).all()
            participants = await self._participants(conn, [str(r.id) for r in rows])
        return [_team(r, participants[str(r.id)]) for r in rows]

    async def create_team(self, viewer: Viewer, team: Team, idem: Idempotency | None) -> Team:
        async with self._db.transaction() as conn:
            first = await self._claim(conn, idem)
            if first is not None:
                return await self._visible_team(conn, viewer, first)
            await conn.execute(
                team_t.insert().values(
                    id=team.id,
                    name=team.name,
                    description=team.description,
                    status=team.status.value,
                    config=team.config,
                    owner_user_id=team.owner_user_id,
                )
            )
            await self._write_participants(conn, team.id, team.participants, "team.participants")
            await self._remember(conn, idem, team.id)
            return await self._visible_team(conn, viewer, team.id)

    async def update_team(self, viewer: Viewer, patch: Team, paths: set[str], etag: str) -> Team:
        async with self._db.transaction() as conn:
            current = await self._visible_team(conn, viewer, patch.id, lock=True)
            if not access.can_change_team(viewer, current):
                raise PermissionDenied(
                    f"changing a system team needs scope {access.ADMIN_SCOPE!r}", reason="TEAM_READ_ONLY"
                )
            _check_etag(etag, current.revision)
            new = apply_mask(current, patch, paths)
            await conn.execute(
                team_t.update()
                .where(team_t.c.id == patch.id)
                .values(
                    name=new.name,
                    description=new.description,
                    status=new.status.value,
                    config=new.config,
                    **_bumped(),
                )
            )
            if "participants" in paths:
                await self._write_participants(conn, patch.id, new.participants, "team.participants")
            return await self._visible_team(conn, viewer, patch.id)

    async def delete_team(self, viewer: Viewer, team_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            current = await self._visible_team(conn, viewer, team_id, lock=True)
            if not access.can_change_team(viewer, current):
                raise PermissionDenied(
                    f"deleting a system team needs scope {access.ADMIN_SCOPE!r}", reason="TEAM_READ_ONLY"
                )
            _check_etag(etag, current.revision)
            await conn.execute(team_t.delete().where(team_t.c.id == team_id))

    # -- catalog -----------------------------------------------------------------------------------

    async def apply_catalog(
        self, agents: Sequence[Agent], skills: Sequence[Skill], commands: Sequence[Command], teams: Sequence[Team]
    ) -> CatalogChanges:
        """Upserts system objects in one transaction, touching only rows that differ, so a load
        of an unchanged file changes nothing (not even timestamps)."""
        changes = CatalogChanges()
        touched: set[str] = set()
        async with self._db.transaction() as conn:
            for agent in sorted(agents, key=lambda a: a.id):
                changes.agents += await self._upsert(conn, agent_t, _agent_values(agent), ["id"])
            await self._lock_agents(conn, {a.id for a in agents} | {s.agent_id for s in skills})
            await self._check_catalog_skills(conn, skills)
            for skill in skills:
                if await self._upsert(conn, skill_t, _skill_values(skill), ["id"]):
                    changes.skills += 1
                    touched.add(skill.agent_id)
            for command in commands:
                if await self._upsert(conn, command_t, _command_values(command), "command_trigger_key"):
                    changes.commands += 1
                    touched.add(command.agent_id)
            for team in teams:
                changes.teams += await self._apply_catalog_team(conn, team)
            if touched:
                await self._refresh_snapshots(conn, touched)
        return changes

    @staticmethod
    async def _check_catalog_skills(conn: AsyncConnection, skills: Sequence[Skill]) -> None:
        rows = await conn.execute(
            sa.select(skill_t.c.id, skill_t.c.agent_id, skill_t.c.created_by_user_id).where(
                skill_t.c.id.in_([s.id for s in skills])
            )
        )
        wanted = {s.id: s.agent_id for s in skills}
        for row in rows:
            if row.created_by_user_id is not None or row.agent_id != wanted[row.id]:
                raise FailedPrecondition(
                    "a catalog skill id is taken by a skill of another agent or a user; skill ids are immutable",
                    reason="CATALOG_CONFLICT",
                    metadata={"skill_id": row.id},
                )

    @staticmethod
    async def _upsert(conn: AsyncConnection, table: sa.Table, values: dict[str, Any], conflict: list[str] | str) -> int:
        """1 when the row was inserted or changed, 0 when it already held these values."""
        statement = pg_insert(table).values(**values)
        columns = [c for c in values if c not in ("id",)]
        target = {"constraint": conflict} if isinstance(conflict, str) else {"index_elements": conflict}
        differs = sa.tuple_(*[table.c[c] for c in columns]).is_distinct_from(
            sa.tuple_(*[statement.excluded[c] for c in columns])
        )
        upsert = statement.on_conflict_do_update(
            **target,
            set_={**{c: statement.excluded[c] for c in columns}, **_bumped_for(table)},
            where=differs,
        ).returning(sa.literal(1))
        return 1 if (await conn.execute(upsert)).first() is not None else 0

    async def _apply_catalog_team(self, conn: AsyncConnection, team: Team) -> int:
        changed = await self._upsert(conn, team_t, _team_values(team), ["id"])
        current = (await self._participants(conn, [team.id]))[team.id]
        if list(team.participants) != current:
            await self._write_participants(conn, team.id, team.participants, f"teams[{team.id}].participants")
            if not changed:
                await conn.execute(team_t.update().where(team_t.c.id == team.id).values(**_bumped()))
            changed = 1
        return changed


def _bumped_for(table: sa.Table) -> dict[str, Any]:
    return {"revision": table.c.revision + 1, "update_time": sa.func.now()}


def _agent_values(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "avatar_url": agent.avatar_url,
        "role_prompt": agent.role_prompt,
    }


def _skill_values(skill: Skill) -> dict[str, Any]:
    return {
        "id": skill.id,
        "agent_id": skill.agent_id,
        "name": skill.name,
        "description": skill.description,
        "definition": skill.definition.to_json(),
        "created_by_user_id": None,
        "is_public": skill.is_public,
    }


def _command_values(command: Command) -> dict[str, Any]:
    return {
        "trigger": command.trigger,
        "owner_user_id": None,
        "agent_id": command.agent_id,
        "target_skill_id": command.target_skill_id,
        "description": command.description,
    }


def _team_values(team: Team) -> dict[str, Any]:
    values: dict[str, JSON] = {
        "id": team.id,
        "name": team.name,
        "description": team.description,
        "status": team.status.value,
        "config": team.config,
        "owner_user_id": None,
    }
    return values
