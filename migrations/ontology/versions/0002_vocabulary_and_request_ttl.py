"""The platform's column names, and a lifetime for the request log's entries.

Every schema names the same things alike: `created_at` and `updated_at` for when a row was made
and last changed, `version` for the counter its etag is made of (so `revision` becomes `version`,
`create_time`/`update_time`/`snapshot_time` end in `_at`). Renamed in place: the data stays.

The request log (kit/idempotency.py) remembers a create's request_id for a lifetime, after which
the entry is pruned: `expires_at`, indexed for pruning. Entries already there live a day from
when they were made. An entry always names what its create made (`resource_id` NOT NULL): one
without was never committed by a create, so none can exist to be dropped.

Revision ID: 0002_ontology
Revises: 0001_ontology
Create Date: 2026-03-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ontology"
down_revision = "0001_ontology"
branch_labels = None
depends_on = None

SCHEMA = "ontology"
TS = sa.TIMESTAMP(timezone=True)
VERSIONED = ("agent", "skill", "command", "team")
# (old name, new name) in every versioned table.
RENAMED = (("create_time", "created_at"), ("update_time", "updated_at"), ("revision", "version"))


def upgrade() -> None:
    for table in VERSIONED:
        for old, new in RENAMED:
            op.alter_column(table, old, new_column_name=new, schema=SCHEMA)
    op.alter_column("agent", "snapshot_time", new_column_name="snapshot_at", schema=SCHEMA)
    op.alter_column("request_log", "create_time", new_column_name="created_at", schema=SCHEMA)
    op.add_column("request_log", sa.Column("expires_at", TS), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.request_log SET expires_at = created_at + interval '1 day'")
    op.execute(f"DELETE FROM {SCHEMA}.request_log WHERE resource_id IS NULL")
    op.alter_column("request_log", "expires_at", nullable=False, schema=SCHEMA)
    op.alter_column("request_log", "resource_id", nullable=False, schema=SCHEMA)
    op.create_index("request_log_expires_at", "request_log", ["expires_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("request_log_expires_at", "request_log", schema=SCHEMA)
    op.alter_column("request_log", "resource_id", nullable=True, schema=SCHEMA)
    op.drop_column("request_log", "expires_at", schema=SCHEMA)
    op.alter_column("request_log", "created_at", new_column_name="create_time", schema=SCHEMA)
    op.alter_column("agent", "snapshot_at", new_column_name="snapshot_time", schema=SCHEMA)
    for table in VERSIONED:
        for old, new in RENAMED:
            op.alter_column(table, new, new_column_name=old, schema=SCHEMA)
