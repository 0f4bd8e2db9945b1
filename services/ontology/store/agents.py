"""Agents: system-level, read by everyone, written by admins."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import AlreadyExists, FailedPrecondition, not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.ontology.domain.models import Agent, TeamStatus, apply_mask
from services.ontology.store.tables import agent_of, agent_t, participant_t, skill_t, team_t


@dataclass(frozen=True)
class AgentCursor:
    """The agents' order: by id."""

    id: str


async def agent_row(conn: AsyncConnection, agent_id: str, *, lock: bool = False) -> Agent:
    query = sa.select(agent_t).where(agent_t.c.id == agent_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise not_found("agent")
    return agent_of(row)


class AgentStore:
    def __init__(self, db: Database, requests: RequestLog) -> None:
        self._db = db
        self._requests = requests

    async def get(self, agent_id: str) -> Agent:
        async with self._db.connection() as conn:
            return await agent_row(conn, agent_id)

    async def page(self, page: Rows[Agent, AgentCursor]) -> None:
        query = sa.select(agent_t).order_by(agent_t.c.id)
        if page.after is not None:
            query = query.where(agent_t.c.id > page.after.id)
        async with self._db.connection() as conn:
            await read_page(conn, query, page, agent_of)

    async def create(self, agent: Agent, key: RequestKey | None) -> Agent:
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, agent.id)
            if first is not None:
                return await agent_row(conn, first)
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
            return agent_of(row)

    async def update(self, patch: Agent, paths: set[str], etag: str) -> Agent:
        async with self._db.transaction() as conn:
            current = await agent_row(conn, patch.id, lock=True)
            check_etag(etag, current.version, "agent")
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
                        **bumped(agent_t),
                    )
                    .returning(*agent_t.c)
                )
            ).one()
            return agent_of(row)

    async def delete(self, agent_id: str, etag: str, force: bool) -> None:
        async with self._db.transaction() as conn:
            current = await agent_row(conn, agent_id, lock=True)
            check_etag(etag, current.version, "agent")
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
                    team_t.update()
                    .where(team_t.c.id.in_(team_ids))
                    .values(status=TeamStatus.ERROR.value, **bumped(team_t))
                )
            # Skills and commands go with it (ON DELETE CASCADE).
            await conn.execute(agent_t.delete().where(agent_t.c.id == agent_id))
