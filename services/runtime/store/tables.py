"""SQLAlchemy Core tables of schema `runtime` (created by migrations/runtime)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

SCHEMA = "runtime"
# One channel for the whole service; payloads name the tasks (see events.notify_payload).
NOTIFY_CHANNEL = "runtime_events"

metadata = sa.MetaData(schema=SCHEMA)

task = sa.Table(
    "task",
    metadata,
    sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("agent_id", sa.Text, nullable=False),
    sa.Column("team_id", postgresql.UUID(as_uuid=False)),
    sa.Column("session_id", postgresql.UUID(as_uuid=False)),
    sa.Column("trigger_source", sa.Text, nullable=False),
    sa.Column("origin_skill_id", sa.Text),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("inputs", postgresql.JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("result", postgresql.JSONB(none_as_null=True)),
    sa.Column("error", postgresql.JSONB(none_as_null=True)),
    sa.Column("is_pinned", sa.Boolean, nullable=False),
    sa.Column("is_archived", sa.Boolean, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("lease_id", postgresql.UUID(as_uuid=False)),
    sa.Column("lease_holder", sa.Text),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    sa.Column("request_id", postgresql.UUID(as_uuid=False)),
    sa.Column("state_version", sa.Integer, nullable=False),
    sa.Column("edit_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=False),
)

task_event = sa.Table(
    "task_event",
    metadata,
    sa.Column("task_id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("content_text", sa.Text, nullable=False),
    sa.Column("render_payload", postgresql.JSONB(none_as_null=True)),
    sa.Column("metadata", postgresql.JSONB, nullable=False),
    sa.Column("client_key", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
