"""Agents, skills, commands, teams and the idempotency log of the ontology service.

Revision ID: 0001_ontology
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_ontology"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "ontology"


def _times() -> list[sa.Column[object]]:
    return [
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("create_time", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "agent",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("avatar_url", sa.Text, nullable=False, server_default=""),
        sa.Column("role_prompt", sa.Text, nullable=False, server_default=""),
        # Kept up to date by the service in the transaction of every skill or command change.
        sa.Column(
            "capabilities_snapshot",
            postgresql.JSONB,
            nullable=False,
            server_default=sa.text("""'{"skills": [], "commands": []}'::jsonb"""),
        ),
        sa.Column("snapshot_time", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        *_times(),
        schema=SCHEMA,
    )
    op.create_table(
        "skill",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("agent_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.agent.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("definition", postgresql.JSONB, nullable=False),
        # NULL: a system skill.
        sa.Column("created_by_user_id", sa.Text, nullable=True),
        sa.Column("is_public", sa.Boolean, nullable=False, server_default=sa.false()),
        *_times(),
        # Target of the command's composite key: a command's skill belongs to the command's agent.
        sa.UniqueConstraint("id", "agent_id", name="skill_id_agent_key"),
        schema=SCHEMA,
    )
    op.create_index("skill_agent_idx", "skill", ["agent_id", "id"], schema=SCHEMA)
    op.create_index(
        "skill_creator_idx",
        "skill",
        ["created_by_user_id", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("created_by_user_id IS NOT NULL"),
    )
    op.create_table(
        "command",
        sa.Column("id", postgresql.UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("trigger", sa.Text, nullable=False),
        # NULL: a system command.
        sa.Column("owner_user_id", sa.Text, nullable=True),
        sa.Column("agent_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.agent.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target_skill_id", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        *_times(),
        sa.ForeignKeyConstraint(
            ["target_skill_id", "agent_id"],
            [f"{SCHEMA}.skill.id", f"{SCHEMA}.skill.agent_id"],
            name="command_skill_fkey",
            ondelete="CASCADE",
        ),
        # One system command per trigger, and one command per trigger per user.
        sa.UniqueConstraint("trigger", "owner_user_id", name="command_trigger_key", postgresql_nulls_not_distinct=True),
        sa.CheckConstraint("trigger ~ '^/[a-z][a-z0-9_-]{0,31}$'", name="command_trigger_check"),
        schema=SCHEMA,
    )
    op.create_index("command_skill_idx", "command", ["target_skill_id"], schema=SCHEMA)
    op.create_index("command_agent_idx", "command", ["agent_id"], schema=SCHEMA)
    op.create_table(
        "team",
        sa.Column("id", postgresql.UUID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("config", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        # NULL: a system team.
        sa.Column("owner_user_id", sa.Text, nullable=True),
        *_times(),
        sa.CheckConstraint("status IN ('active', 'inactive', 'error')", name="team_status_check"),
        schema=SCHEMA,
    )
    op.create_index("team_owner_idx", "team", ["owner_user_id", "id"], schema=SCHEMA)
    op.create_table(
        "team_participant",
        sa.Column("team_id", postgresql.UUID, sa.ForeignKey(f"{SCHEMA}.team.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        # No cascade: an agent that is in a team is not deleted from under it.
        sa.Column("agent_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.agent.id"), nullable=False),
        sa.Column("role", sa.Text, nullable=False, server_default=""),
        sa.Column("config", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.PrimaryKeyConstraint("team_id", "position"),
        schema=SCHEMA,
    )
    op.create_index("team_participant_agent_idx", "team_participant", ["agent_id"], schema=SCHEMA)
    # Create requests with a request_id, so a retried create returns the first result (AIP-155).
    op.create_table(
        "request_log",
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("request_id", postgresql.UUID, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=True),
        sa.Column("create_time", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("principal", "method", "request_id"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("request_log", schema=SCHEMA)
    op.drop_table("team_participant", schema=SCHEMA)
    op.drop_table("team", schema=SCHEMA)
    op.drop_table("command", schema=SCHEMA)
    op.drop_table("skill", schema=SCHEMA)
    op.drop_table("agent", schema=SCHEMA)
