"""Skills: system skills (no creator) and the ones users crystallize."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import AlreadyExists, PermissionDenied, not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.ontology.domain import access
from services.ontology.domain.access import Viewer
from services.ontology.domain.models import Ownership, Skill, apply_mask
from services.ontology.store import snapshots
from services.ontology.store.tables import skill_of, skill_t
from services.ontology.store.visibility import owned, skill_visible


@dataclass(frozen=True)
class SkillCursor:
    """The skills' order: by id."""

    id: str


@dataclass(frozen=True)
class SkillFilter:
    agent_id: str
    ownership: Ownership


async def visible_skill(conn: AsyncConnection, viewer: Viewer, skill_id: str, *, lock: bool = False) -> Skill:
    query = sa.select(skill_t).where(skill_t.c.id == skill_id, skill_visible(viewer))
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise not_found("skill")
    return skill_of(row)


class SkillStore:
    def __init__(self, db: Database, requests: RequestLog) -> None:
        self._db = db
        self._requests = requests

    async def _changeable(self, conn: AsyncConnection, viewer: Viewer, skill_id: str, etag: str) -> Skill:
        """The skill, locked along with its agent (agent first, the order every writer uses)."""
        found = await visible_skill(conn, viewer, skill_id)
        if not access.can_change_skill(viewer, found):
            raise PermissionDenied("only the skill's creator or an admin may change it", reason="SKILL_READ_ONLY")
        await snapshots.lock_agents(conn, [found.agent_id])
        current = await visible_skill(conn, viewer, skill_id, lock=True)
        check_etag(etag, current.version, "skill")
        return current

    async def get(self, viewer: Viewer, skill_id: str) -> Skill:
        async with self._db.connection() as conn:
            return await visible_skill(conn, viewer, skill_id)

    async def page(self, viewer: Viewer, where: SkillFilter, page: Rows[Skill, SkillCursor]) -> None:
        query = (
            sa.select(skill_t)
            .where(
                skill_visible(viewer),
                owned(viewer, where.ownership, skill_t.c.created_by_user_id, skill_t.c.is_public),
            )
            .order_by(skill_t.c.id)
        )
        if where.agent_id:
            query = query.where(skill_t.c.agent_id == where.agent_id)
        if page.after is not None:
            query = query.where(skill_t.c.id > page.after.id)
        async with self._db.connection() as conn:
            await read_page(conn, query, page, skill_of)

    async def create(self, viewer: Viewer, skill: Skill, key: RequestKey | None) -> Skill:
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, skill.id)
            if first is not None:
                return await visible_skill(conn, viewer, first)
            await snapshots.lock_agents(conn, [skill.agent_id])
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
            await snapshots.refresh(conn, [skill.agent_id])
            return skill_of(row)

    async def update(self, viewer: Viewer, patch: Skill, paths: set[str], etag: str) -> Skill:
        async with self._db.transaction() as conn:
            current = await self._changeable(conn, viewer, patch.id, etag)
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
                        **bumped(skill_t),
                    )
                    .returning(*skill_t.c)
                )
            ).one()
            await snapshots.refresh(conn, [current.agent_id])
            return skill_of(row)

    async def delete(self, viewer: Viewer, skill_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            current = await self._changeable(conn, viewer, skill_id, etag)
            # The commands that start it go with it (ON DELETE CASCADE).
            await conn.execute(skill_t.delete().where(skill_t.c.id == skill_id))
            await snapshots.refresh(conn, [current.agent_id])
