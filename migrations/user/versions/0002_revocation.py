"""Access-token revocations that every service follows (WatchRevocations).

One row per ended sign-in (refresh family) whose access tokens may still be unexpired: the
SHA-256 of its session id (the tokens' `sid` claim) and when the last of those tokens expires,
after which the row is pruned. `seq` is the followers' cursor; rows are inserted under a table
lock, so seq order is commit order and a cursor never skips a row that commits late.

Revision ID: user_0002
Revises: user_0001
Create Date: 2025-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "user_0002"
down_revision = "user_0001"
branch_labels = None
depends_on = None

SCHEMA = "users"
TS = sa.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "revocation",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        # sha256(session id): what followers learn is useless without the token it came from.
        sa.Column("session_digest", sa.LargeBinary, nullable=False),
        sa.Column("revoked_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", TS, nullable=False),
        sa.CheckConstraint("octet_length(session_digest) = 32", name="revocation_session_digest_sha256"),
        schema=SCHEMA,
    )
    # Pruning deletes by expiry.
    op.create_index("revocation_expires_at", "revocation", ["expires_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("revocation", schema=SCHEMA)
