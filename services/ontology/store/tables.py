"""The ontology schema's tables (SQLAlchemy Core, mirroring the hand-written migrations) and how
their rows become domain values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from nexus.kit import idempotency
from services.ontology.domain import snapshot
from services.ontology.domain.definition import SkillDefinition
from services.ontology.domain.models import Agent, Command, Participant, Skill, Team, TeamStatus

SCHEMA = "ontology"
metadata = sa.MetaData(schema=SCHEMA)
_TS = sa.TIMESTAMP(timezone=True)


def _versioned() -> list[sa.Column[Any]]:
    return [
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    ]


agent_t = sa.Table(
    "agent",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("avatar_url", sa.Text, nullable=False),
    sa.Column("role_prompt", sa.Text, nullable=False),
    sa.Column("capabilities_snapshot", postgresql.JSONB, nullable=False),
    sa.Column("snapshot_at", _TS, nullable=False),
    *_versioned(),
)
skill_t = sa.Table(
    "skill",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("agent_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("definition", postgresql.JSONB, nullable=False),
    sa.Column("created_by_user_id", sa.Text, nullable=True),
    sa.Column("is_public", sa.Boolean, nullable=False),
    *_versioned(),
)
command_t = sa.Table(
    "command",
    metadata,
    sa.Column("id", postgresql.UUID, primary_key=True, server_default=sa.FetchedValue()),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("owner_user_id", sa.Text, nullable=True),
    sa.Column("agent_id", sa.Text, nullable=False),
    sa.Column("target_skill_id", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    *_versioned(),
)
team_t = sa.Table(
    "team",
    metadata,
    sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("config", postgresql.JSONB, nullable=False),
    sa.Column("owner_user_id", sa.Text, nullable=True),
    *_versioned(),
)
participant_t = sa.Table(
    "team_participant",
    metadata,
    sa.Column("team_id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("agent_id", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("config", postgresql.JSONB, nullable=False),
)
request_log_t = idempotency.table(metadata)


def agent_of(row: sa.Row[Any]) -> Agent:
    m = row._mapping
    return Agent(
        id=m["id"],
        name=m["name"],
        description=m["description"],
        avatar_url=m["avatar_url"],
        role_prompt=m["role_prompt"],
        snapshot=snapshot.Snapshot.from_json(m["capabilities_snapshot"], m["snapshot_at"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


def skill_of(row: sa.Row[Any]) -> Skill:
    m = row._mapping
    return Skill(
        id=m["id"],
        agent_id=m["agent_id"],
        name=m["name"],
        description=m["description"],
        definition=SkillDefinition.from_json(m["definition"]),
        created_by_user_id=m["created_by_user_id"],
        is_public=m["is_public"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


def command_of(row: sa.Row[Any]) -> Command:
    m = row._mapping
    return Command(
        trigger=m["trigger"],
        agent_id=m["agent_id"],
        target_skill_id=m["target_skill_id"],
        description=m["description"],
        owner_user_id=m["owner_user_id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )


def team_of(row: sa.Row[Any], participants: Sequence[Participant]) -> Team:
    m = row._mapping
    return Team(
        id=str(m["id"]),
        name=m["name"],
        description=m["description"],
        participants=tuple(participants),
        status=TeamStatus(m["status"]),
        config=m["config"],
        owner_user_id=m["owner_user_id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
    )
