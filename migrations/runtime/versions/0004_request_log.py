"""The request log of idempotent creates (kit/idempotency.py), as every schema has one; a fired
task's own uniqueness.

CreateTask, CreateSession, CreateSchedule and CreateArtifact remembered their request_id on the
row they created (unique per user), which could not tell a retry from a different request with
the same id, and kept it forever. The log keeps, per caller, method and request_id, a digest of
the request and the id of what it created, for a lifetime (`expires_at`, indexed for pruning).
The rows' own `request_id` columns go: ids already there cannot be carried over without the
digests of their requests, so a create retried across this upgrade creates again.

A schedule's firing must make one task forever, not for a request id's lifetime: the fired task
said so by a request_id derived from (schedule, due time). It now carries the due time itself,
`scheduled_at`, unique with its `schedule_id`. The last task each schedule fired gets its due
time (`schedule.last_fire_at`); older fired tasks keep none, as no firing can come back for them.

A downgrade puts back the ids the log still holds, and the derived ids of fired tasks that know
their due time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-03-04
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "runtime"
TS = sa.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=False)
# Each table that had a request_id, and the method whose log entries name its rows.
CREATES = {"task": "CreateTask", "session": "CreateSession", "schedule": "CreateSchedule", "artifact": "CreateArtifact"}
# The uuid5 namespace fired tasks' request ids were derived in (domain/schedules.py before 0004).
FIRE_NAMESPACE = uuid.UUID("6f1c1a4e-2b7d-5c55-9a59-3f5f0f0c9e21")


def upgrade() -> None:
    op.create_table(
        "request_log",
        # The caller's token subject (a user id); an artifact's is its task owner's.
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("request_id", UUID, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("principal", "method", "request_id"),
        schema=SCHEMA,
    )
    op.create_index("request_log_expires_at", "request_log", ["expires_at"], schema=SCHEMA)

    # Neither column is ever updated, so the task row's per-append updates stay HOT.
    op.add_column("task", sa.Column("scheduled_at", TS), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.task AS t SET scheduled_at = s.last_fire_at FROM {SCHEMA}.schedule AS s"
        " WHERE s.last_task_id = t.id AND t.schedule_id = s.id"
    )
    op.create_index(
        "task_schedule_fire_unique",
        "task",
        ["schedule_id", "scheduled_at"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("schedule_id IS NOT NULL"),
    )
    for table in CREATES:
        op.drop_constraint(f"{table}_request_id_unique", table, schema=SCHEMA)
        op.drop_column(table, "request_id", schema=SCHEMA)


def downgrade() -> None:
    for table, method in CREATES.items():
        op.add_column(table, sa.Column("request_id", UUID), schema=SCHEMA)
        op.execute(
            f"UPDATE {SCHEMA}.{table} AS row SET request_id = r.request_id FROM {SCHEMA}.request_log AS r"
            f" WHERE r.method = '{method}' AND r.resource_id = row.id::text AND r.principal = row.user_id"
        )
    bind = op.get_bind()
    fired = bind.execute(
        sa.text(f"SELECT id, schedule_id, scheduled_at FROM {SCHEMA}.task WHERE scheduled_at IS NOT NULL")
    ).all()
    for task_id, schedule_id, due in fired:
        derived = str(uuid.uuid5(FIRE_NAMESPACE, f"{schedule_id}@{due.timestamp():.6f}"))
        bind.execute(
            sa.text(f"UPDATE {SCHEMA}.task SET request_id = :request_id WHERE id = :id"),
            {"request_id": derived, "id": task_id},
        )
    for table in CREATES:
        op.create_unique_constraint(f"{table}_request_id_unique", table, ["user_id", "request_id"], schema=SCHEMA)
    op.drop_index("task_schedule_fire_unique", "task", schema=SCHEMA)
    op.drop_column("task", "scheduled_at", schema=SCHEMA)
    op.drop_table("request_log", schema=SCHEMA)
