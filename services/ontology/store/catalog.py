"""The seed catalog's system objects, upserted in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database, bumped
from nexus.kit.errors import FailedPrecondition
from nexus.kit.validation import JSON
from services.ontology.domain.models import Agent, Command, Skill, Team
from services.ontology.store import snapshots
from services.ontology.store.tables import agent_t, command_t, skill_t, team_t
from services.ontology.store.teams import participants_of, write_participants


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


class CatalogStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def apply(
        self, agents: Sequence[Agent], skills: Sequence[Skill], commands: Sequence[Command], teams: Sequence[Team]
    ) -> CatalogChanges:
        """Upserts system objects in one transaction, touching only rows that differ, so a load
        of an unchanged file changes nothing (not even timestamps)."""
        changes = CatalogChanges()
        touched: set[str] = set()
        async with self._db.transaction() as conn:
            for agent in sorted(agents, key=lambda a: a.id):
                changes.agents += await _upsert(conn, agent_t, _agent_values(agent), ["id"])
            await snapshots.lock_agents(conn, {a.id for a in agents} | {s.agent_id for s in skills})
            await _check_skills(conn, skills)
            for skill in skills:
                if await _upsert(conn, skill_t, _skill_values(skill), ["id"]):
                    changes.skills += 1
                    touched.add(skill.agent_id)
            for command in commands:
                if await _upsert(conn, command_t, _command_values(command), "command_trigger_key"):
                    changes.commands += 1
                    touched.add(command.agent_id)
            for team in teams:
                changes.teams += await _apply_team(conn, team)
            if touched:
                await snapshots.refresh(conn, touched)
        return changes


async def _check_skills(conn: AsyncConnection, skills: Sequence[Skill]) -> None:
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
        set_={**{c: statement.excluded[c] for c in columns}, **bumped(table)},
        where=differs,
    ).returning(sa.literal(1))
    return 1 if (await conn.execute(upsert)).first() is not None else 0


async def _apply_team(conn: AsyncConnection, team: Team) -> int:
    changed = await _upsert(conn, team_t, _team_values(team), ["id"])
    if list(team.participants) != await participants_of(conn, team.id):
        await write_participants(conn, team.id, team.participants, f"teams[{team.id}].participants")
        if not changed:
            await conn.execute(team_t.update().where(team_t.c.id == team.id).values(**bumped(team_t)))
        changed = 1
    return changed


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
