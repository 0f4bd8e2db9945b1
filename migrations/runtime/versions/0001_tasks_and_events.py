"""Tasks and their ordered event log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "runtime"
STATUSES = ("queued", "running", "waiting_input", "finished", "failed", "cancelled")
SOURCES = ("chat_manual", "slash_command", "cron_trigger")
ROLES = ("user", "assistant", "system", "tool")
TYPES = ("message", "nexus_render", "tool_use", "tool_result", "status", "plan")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "task",
        sa.Column("id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("agent_id", sa.Text, nullable=False),
        sa.Column("team_id", postgresql.UUID(as_uuid=False)),
        sa.Column("session_id", postgresql.UUID(as_uuid=False)),
        sa.Column("trigger_source", sa.Text, nullable=False),
        sa.Column("origin_skill_id", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("inputs", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("result", postgresql.JSONB),
        sa.Column("error", postgresql.JSONB),
        sa.Column("is_pinned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_archived", sa.Boolean, nullable=False, server_default=sa.false()),
        # The event counter (Temporal's next_event_id): appends lock the row and advance it, so
        # seqs have no gaps and their order is the commit order.
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("lease_id", postgresql.UUID(as_uuid=False)),
        sa.Column("lease_holder", sa.Text),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("request_id", postgresql.UUID(as_uuid=False)),
        # Bumped by every status change: an append that checked the task's rules against a cached
        # state commits only if this is unchanged (events.py, the fast path).
        sa.Column("state_version", sa.Integer, nullable=False, server_default=sa.text("1")),
        # Bumped by UpdateTask only: the etag guards the owner's edits, not the event flow.
        sa.Column("edit_version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(_in("status", STATUSES), name="task_status_valid"),
        sa.CheckConstraint(_in("trigger_source", SOURCES), name="task_trigger_source_valid"),
        sa.CheckConstraint("last_seq >= 0", name="task_last_seq_non_negative"),
        # A lease (all three columns) exists exactly while the task runs.
        sa.CheckConstraint(
            "(status = 'running') = (lease_id IS NOT NULL)"
            " AND num_nulls(lease_id, lease_holder, lease_expires_at) IN (0, 3)",
            name="task_lease_iff_running",
        ),
        sa.UniqueConstraint("user_id", "request_id", name="task_request_id_unique"),
        schema=SCHEMA,
    )
    # Every append advances last_seq and last_active_at. Neither is indexed, and pages keep free
    # space, so those updates are HOT: no index entries are written on the append path. The
    # sidebar sorts one user's tasks, which this index finds.
    op.execute("ALTER TABLE runtime.task SET (fillfactor = 70)")
    op.create_index("task_sidebar_idx", "task", ["user_id", "is_archived"], schema=SCHEMA)
    op.create_index(
        "task_session_idx",
        "task",
        ["session_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("session_id IS NOT NULL"),
    )
    # Claims: queued tasks per agent, oldest first.
    op.create_index(
        "task_queued_idx",
        "task",
        ["agent_id", "created_at", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'queued'"),
    )
    # The lease reaper: running tasks by lease expiry.
    op.create_index(
        "task_lease_expiry_idx",
        "task",
        ["lease_expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'running'"),
    )

    op.create_table(
        "task_event",
        # task_id leads the key so the table can be hash-partitioned or distributed by task.
        sa.Column(
            "task_id",
            postgresql.UUID(as_uuid=False),
            sa.ForeignKey(f"{SCHEMA}.task.id", ondelete="CASCADE", name="task_event_task_fk"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("content_text", sa.Text, nullable=False, server_default=""),
        sa.Column("render_payload", postgresql.JSONB),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("client_key", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("task_id", "seq", name="task_event_pkey"),
        sa.CheckConstraint("seq >= 1", name="task_event_seq_positive"),
        sa.CheckConstraint(_in("role", ROLES), name="task_event_role_valid"),
        sa.CheckConstraint(_in("type", TYPES), name="task_event_type_valid"),
        schema=SCHEMA,
    )
    # The backstop of idempotent appends; the append path checks keys under the task's row lock.
    op.create_index(
        "task_event_client_key_idx",
        "task_event",
        ["task_id", "client_key"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("client_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("task_event", schema=SCHEMA)
    op.drop_table("task", schema=SCHEMA)
