"""One vocabulary of column names across the schemas: `edit_version` becomes `version`.

The names every schema uses (CONTRIBUTING.md, "Store"):
- `created_at`, `updated_at`: when the row was made and last changed (`timestamptz`, `now()`);
  other instants are `<what>_at` too (`last_active_at`, `lease_expires_at`, `next_fire_at`);
- `version`: the counter an etag is made of, bumped by every edit of the resource;
- `state_version` (runtime.task only) keeps its name: it is not the etag's counter but the one
  every status change bumps, which the event log's fast path guards on, so the two must not
  share a name.

The runtime already says `created_at`/`updated_at`, and `version` on the plan, context and memory;
its task, session, artifact and schedule said `edit_version`. Renaming in place keeps the data
(a catalog change: no rewrite, and the task table's HOT updates are untouched).

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "runtime"
TABLES = ("task", "session", "artifact", "schedule")


def upgrade() -> None:
    for table in TABLES:
        op.alter_column(table, "edit_version", new_column_name="version", schema=SCHEMA)


def downgrade() -> None:
    for table in TABLES:
        op.alter_column(table, "version", new_column_name="edit_version", schema=SCHEMA)
