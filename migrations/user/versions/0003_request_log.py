"""The request log of idempotent creates (kit/idempotency.py), as every schema has one.

CreateConnection remembered its request_id on the connection row, which could not tell a retry
from a different request with the same id, and kept it forever. The log keeps, per caller,
method and request_id, a digest of the request and the connection it created, for a lifetime
(`expires_at`, indexed for pruning). The connection's own `request_id` column goes: ids already
there cannot be carried over without the digests of their requests, so a create retried across
this upgrade creates again. A downgrade puts back the ids the log still holds.

Revision ID: user_0003
Revises: user_0002
Create Date: 2026-03-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "user_0003"
down_revision = "user_0002"
branch_labels = None
depends_on = None

SCHEMA = "users"
TS = sa.TIMESTAMP(timezone=True)
UUID = pg.UUID(as_uuid=False)


def upgrade() -> None:
    op.create_table(
        "request_log",
        # The caller's token subject: the user's id for a user token.
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("request_id", UUID, nullable=False),
        # HMAC-SHA-256 of the request under a credential key: it carries credentials.
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("principal", "method", "request_id"),
        schema=SCHEMA,
    )
    op.create_index("request_log_expires_at", "request_log", ["expires_at"], schema=SCHEMA)
    op.drop_index("user_connection_user_request", "user_connection", schema=SCHEMA)
    op.drop_column("user_connection", "request_id", schema=SCHEMA)


def downgrade() -> None:
    op.add_column("user_connection", sa.Column("request_id", UUID), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.user_connection AS c SET request_id = r.request_id"
        f" FROM {SCHEMA}.request_log AS r"
        " WHERE r.method = 'CreateConnection' AND r.resource_id = c.id::text AND r.principal = c.user_id::text"
    )
    op.create_index(
        "user_connection_user_request",
        "user_connection",
        ["user_id", "request_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )
    op.drop_table("request_log", schema=SCHEMA)
