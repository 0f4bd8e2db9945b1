"""The task's workspace: sessions, plan, context, memory, artifacts and cron schedules.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "runtime"
UUID = postgresql.UUID(as_uuid=False)


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _task_fk(table: str) -> sa.ForeignKey:
    # Tasks are never deleted today; if they ever are, their workspace goes with them.
    return sa.ForeignKey(f"{SCHEMA}.task.id", ondelete="CASCADE", name=f"{table}_task_fk")


def upgrade() -> None:
    op.create_table(
        "session",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("config", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("request_id", UUID),
        sa.Column("edit_version", sa.Integer, nullable=False, server_default=sa.text("1")),
        _now("created_at"),
        _now("updated_at"),
        sa.UniqueConstraint("user_id", "request_id", name="session_request_id_unique"),
        schema=SCHEMA,
    )
    op.create_index("session_list_idx", "session", ["user_id", "updated_at", "id"], schema=SCHEMA)
    # Tasks created before sessions existed carry format-checked ids only: give each such id a
    # session (owned by the user of its oldest task), so every session_id names a session. No
    # foreign key: the task row is the event log's hot row, and the store checks the session
    # under a lock when a task is created.
    op.execute(
        "INSERT INTO runtime.session (id, user_id, title)"
        " SELECT DISTINCT ON (session_id) session_id, user_id, '' FROM runtime.task"
        " WHERE session_id IS NOT NULL ORDER BY session_id, created_at"
        " ON CONFLICT DO NOTHING"
    )
    op.add_column("task", sa.Column("schedule_id", UUID), schema=SCHEMA)

    op.create_table(
        "task_plan",
        sa.Column("task_id", UUID, _task_fk("task_plan"), primary_key=True),
        sa.Column("steps", postgresql.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        # Derived from the steps on every write (seed 003 stores it); never written by callers.
        sa.Column("current_step_index", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        _now("updated_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "task_context",
        sa.Column("task_id", UUID, _task_fk("task_context"), primary_key=True),
        sa.Column("variables", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("active_files", postgresql.ARRAY(UUID), nullable=False, server_default=sa.text("'{}'::uuid[]")),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        _now("updated_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "task_memory",
        sa.Column("task_id", UUID, _task_fk("task_memory"), primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("summary_text", sa.Text, nullable=False, server_default=""),
        sa.Column("key_takeaways", postgresql.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("vector_doc_id", sa.Text),
        # Summary and takeaways as trigram search sees them: NFKC, lower case, and runs of CJK
        # characters written as overlapping bigrams (domain/memory.py), so a short Chinese query
        # matches inside a long sentence that has no spaces.
        sa.Column("search_text", sa.Text, nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        _now("updated_at"),
        schema=SCHEMA,
    )
    op.create_index("task_memory_user_idx", "task_memory", ["user_id"], schema=SCHEMA)
    op.execute(
        "CREATE INDEX task_memory_search_idx ON runtime.task_memory USING gin (search_text runtime.gin_trgm_ops)"
    )

    op.create_table(
        "artifact",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("task_id", UUID, _task_fk("artifact"), nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("storage_uri", sa.Text, nullable=False),
        sa.Column("meta_data", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("is_pinned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_archived", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("request_id", UUID),
        sa.Column("edit_version", sa.Integer, nullable=False, server_default=sa.text("1")),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint("size_bytes >= 0", name="artifact_size_non_negative"),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="artifact_sha256_hex"),
        sa.UniqueConstraint("user_id", "request_id", name="artifact_request_id_unique"),
        schema=SCHEMA,
    )
    op.create_index("artifact_task_idx", "artifact", ["task_id"], schema=SCHEMA)
    op.create_index("artifact_list_idx", "artifact", ["user_id", "is_pinned", "created_at", "id"], schema=SCHEMA)
    # Bytes are shared by every artifact with the same digest; deleting one counts the others.
    op.create_index("artifact_sha256_idx", "artifact", ["sha256"], schema=SCHEMA)

    op.create_table(
        "schedule",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("cron", sa.Text, nullable=False),
        sa.Column("time_zone", sa.Text, nullable=False),
        sa.Column("agent_id", sa.Text, nullable=False),
        sa.Column("skill_id", sa.Text),
        sa.Column("team_id", UUID),
        sa.Column("inputs", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True)),
        sa.Column("last_fire_at", sa.DateTime(timezone=True)),
        sa.Column("last_task_id", UUID),
        sa.Column("request_id", UUID),
        sa.Column("edit_version", sa.Integer, nullable=False, server_default=sa.text("1")),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint("state IN ('active', 'paused')", name="schedule_state_valid"),
        sa.CheckConstraint("(state = 'active') = (next_fire_at IS NOT NULL)", name="schedule_next_iff_active"),
        sa.UniqueConstraint("user_id", "request_id", name="schedule_request_id_unique"),
        schema=SCHEMA,
    )
    op.create_index("schedule_list_idx", "schedule", ["user_id", "created_at", "id"], schema=SCHEMA)
    # The scheduler's poll: active schedules by due time.
    op.create_index(
        "schedule_due_idx",
        "schedule",
        ["next_fire_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'active'"),
    )


def downgrade() -> None:
    op.drop_table("schedule", schema=SCHEMA)
    op.drop_table("artifact", schema=SCHEMA)
    op.drop_table("task_memory", schema=SCHEMA)
    op.drop_table("task_context", schema=SCHEMA)
    op.drop_table("task_plan", schema=SCHEMA)
    op.drop_column("task", "schedule_id", schema=SCHEMA)
    op.drop_table("session", schema=SCHEMA)
