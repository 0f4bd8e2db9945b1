"""SQLAlchemy Core tables of schema `runtime` (created by migrations/runtime)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from nexus.kit import idempotency

SCHEMA = "runtime"
# One channel for the whole service; payloads name the tasks (see writer.py).
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
    sa.Column("state_version", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("schedule_id", postgresql.UUID(as_uuid=False)),
    # The due time of the schedule's firing that made the task: one task per (schedule, due time).
    sa.Column("scheduled_at", sa.DateTime(timezone=True)),
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

session = sa.Table(
    "session",
    metadata,
    sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("config", postgresql.JSONB, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

task_plan = sa.Table(
    "task_plan",
    metadata,
    sa.Column("task_id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("steps", postgresql.JSONB, nullable=False),
    sa.Column("current_step_index", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

task_context = sa.Table(
    "task_context",
    metadata,
    sa.Column("task_id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("variables", postgresql.JSONB, nullable=False),
    sa.Column("active_files", postgresql.ARRAY(postgresql.UUID(as_uuid=False)), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

task_memory = sa.Table(
    "task_memory",
    metadata,
    sa.Column("task_id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("summary_text", sa.Text, nullable=False),
    sa.Column("key_takeaways", postgresql.JSONB, nullable=False),
    sa.Column("vector_doc_id", sa.Text),
    sa.Column("search_text", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

artifact = sa.Table(
    "artifact",
    metadata,
    sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("task_id", postgresql.UUID(as_uuid=False), nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("storage_uri", sa.Text, nullable=False),
    sa.Column("meta_data", postgresql.JSONB, nullable=False),
    sa.Column("is_pinned", sa.Boolean, nullable=False),
    sa.Column("is_archived", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

schedule = sa.Table(
    "schedule",
    metadata,
    sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("cron", sa.Text, nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    sa.Column("agent_id", sa.Text, nullable=False),
    sa.Column("skill_id", sa.Text),
    sa.Column("team_id", postgresql.UUID(as_uuid=False)),
    sa.Column("inputs", postgresql.JSONB, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("next_fire_at", sa.DateTime(timezone=True)),
    sa.Column("last_fire_at", sa.DateTime(timezone=True)),
    sa.Column("last_task_id", postgresql.UUID(as_uuid=False)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The request ids of CreateTask, CreateSession, CreateSchedule and CreateArtifact (kit.idempotency).
request_log = idempotency.table(metadata)
