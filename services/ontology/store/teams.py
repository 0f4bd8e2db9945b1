"""Teams: agents that take turns on a task. System teams are read by everyone; a user's own are
private to them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import FieldViolation, NotFound, PermissionDenied, not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.ontology.domain import access
from services.ontology.domain.access import Viewer
from services.ontology.domain.models import Ownership, Participant, Team, apply_mask
from services.ontology.store.tables import agent_t, participant_t, team_of, team_t
from services.ontology.store.visibility import owned, team_visible


@dataclass(frozen=True)
class TeamCursor:
    """The teams' order: by id."""

    id: str


# A team with its participants in one row, so a page is read (and cut) team by team.
_PARTICIPANTS = (
    sa.select(
        sa.func.coalesce(
            sa.func.jsonb_agg(
                aggregate_order_by(
                    sa.func.jsonb_build_object(
                        "agent_id",
                        participant_t.c.agent_id,
                        "role",
                        participant_t.c.role,
                        "config",
                        participant_t.c.config,
                    ),
                    participant_t.c.position,
                )
            ),
            sa.text("'[]'::jsonb"),
        )
    )
    .where(participant_t.c.team_id == team_t.c.id)
    .scalar_subquery()
    .label("participants")
)
_TEAM = sa.select(team_t, _PARTICIPANTS)


def _team(row: sa.Row[Any]) -> Team:
    return team_of(row, [Participant(**p) for p in row.participants])


async def participants_of(conn: AsyncConnection, team_id: str) -> list[Participant]:
    rows = await conn.execute(
        sa.select(participant_t).where(participant_t.c.team_id == team_id).order_by(participant_t.c.position)
    )
    return [Participant(agent_id=r.agent_id, role=r.role, config=r.config) for r in rows]


async def write_participants(
    conn: AsyncConnection, team_id: str, participants: Sequence[Participant], field: str
) -> None:
    agent_ids = {p.agent_id for p in participants}
    found = set(
        (
            await conn.execute(
                sa.select(agent_t.c.id).where(agent_t.c.id.in_(agent_ids)).with_for_update(read=True, key_share=True)
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


async def _visible(conn: AsyncConnection, viewer: Viewer, team_id: str, *, lock: bool = False) -> Team:
    query = _TEAM.where(team_t.c.id == team_id, team_visible(viewer))
    if lock:
        query = query.with_for_update(of=team_t)
    row = (await conn.execute(query)).first()
    if row is None:
        raise not_found("team")
    return _team(row)


async def _changeable(conn: AsyncConnection, viewer: Viewer, team_id: str, etag: str, doing: str) -> Team:
    current = await _visible(conn, viewer, team_id, lock=True)
    if not access.can_change_team(viewer, current):
        raise PermissionDenied(f"{doing} a system team needs scope {access.ADMIN_SCOPE!r}", reason="TEAM_READ_ONLY")
    check_etag(etag, current.version, "team")
    return current


class TeamStore:
    def __init__(self, db: Database, requests: RequestLog) -> None:
        self._db = db
        self._requests = requests

    async def get(self, viewer: Viewer, team_id: str) -> Team:
        async with self._db.connection() as conn:
            return await _visible(conn, viewer, team_id)

    async def page(self, viewer: Viewer, ownership: Ownership, page: Rows[Team, TeamCursor]) -> None:
        query = _TEAM.where(team_visible(viewer), owned(viewer, ownership, team_t.c.owner_user_id)).order_by(
            team_t.c.id
        )
        if page.after is not None:
            query = query.where(team_t.c.id > page.after.id)
        async with self._db.connection() as conn:
            await read_page(conn, query, page, _team)

    async def create(self, viewer: Viewer, team: Team, key: RequestKey | None) -> Team:
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, team.id)
            if first is not None:
                return await _visible(conn, viewer, first)
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
            await write_participants(conn, team.id, team.participants, "team.participants")
            return await _visible(conn, viewer, team.id)

    async def update(self, viewer: Viewer, patch: Team, paths: set[str], etag: str) -> Team:
        async with self._db.transaction() as conn:
            current = await _changeable(conn, viewer, patch.id, etag, "changing")
            new = apply_mask(current, patch, paths)
            await conn.execute(
                team_t.update()
                .where(team_t.c.id == patch.id)
                .values(
                    name=new.name,
                    description=new.description,
                    status=new.status.value,
                    config=new.config,
                    **bumped(team_t),
                )
            )
            if "participants" in paths:
                await write_participants(conn, patch.id, new.participants, "team.participants")
            return await _visible(conn, viewer, patch.id)

    async def delete(self, viewer: Viewer, team_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            await _changeable(conn, viewer, team_id, etag, "deleting")
            await conn.execute(team_t.delete().where(team_t.c.id == team_id))
