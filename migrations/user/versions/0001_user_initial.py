"""User service tables: accounts, profiles, settings, connections, refresh tokens, reveal audit.

Revision ID: user_0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "user_0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "users"
TS = sa.TIMESTAMP(timezone=True)
UUID = pg.UUID(as_uuid=False)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        # Lower-cased address: uniqueness without regard to case.
        sa.Column("email_key", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        sa.Column("deactivated_at", TS),
        sa.UniqueConstraint("email_key", name="user_email_key_key"),
        schema=SCHEMA,
    )
    op.create_table(
        "user_profile",
        sa.Column("user_id", UUID, sa.ForeignKey("users.user.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("nickname", sa.Text, nullable=False),
        sa.Column("avatar_url", sa.Text),
        sa.Column("preferences", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("principles", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        sa.CheckConstraint("jsonb_typeof(preferences) = 'object'", name="user_profile_preferences_object"),
        sa.CheckConstraint("jsonb_typeof(principles) = 'array'", name="user_profile_principles_array"),
        schema=SCHEMA,
    )
    op.create_table(
        "settings",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", UUID, sa.ForeignKey("users.user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", pg.JSONB, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        sa.UniqueConstraint("user_id", "key", name="settings_user_id_key_key"),
        schema=SCHEMA,
    )
    op.create_table(
        "user_connection",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", UUID, sa.ForeignKey("users.user.id", ondelete="CASCADE"), nullable=False),
        # An ontology agent id; checked over gRPC, never by a foreign key (DESIGN §1).
        sa.Column("agent_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        # AES-256-GCM: nonce || ciphertext || tag, bound to this row (DESIGN §4).
        sa.Column("encrypted_credentials", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("credentials_fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("last_verified_at", TS),
        sa.Column("request_id", UUID),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        sa.CheckConstraint("status IN ('active', 'expired', 'revoked')", name="user_connection_status"),
        schema=SCHEMA,
    )
    op.create_index(
        "user_connection_user_created",
        "user_connection",
        ["user_id", "created_at", "id"],
        schema=SCHEMA,
    )
    op.create_index(
        "user_connection_user_request",
        "user_connection",
        ["user_id", "request_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )
    # Rotation looks for rows that are not on the newest key.
    op.create_index("user_connection_key_id", "user_connection", ["key_id"], schema=SCHEMA)
    op.create_table(
        "refresh_family",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", UUID, sa.ForeignKey("users.user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("last_used_at", TS, nullable=False, server_default=NOW),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_reason", sa.Text),
        schema=SCHEMA,
    )
    op.create_index("refresh_family_user", "refresh_family", ["user_id"], schema=SCHEMA)
    op.create_table(
        "refresh_token",
        # SHA-256 of the token: the token itself is never stored.
        sa.Column("token_hash", sa.LargeBinary, primary_key=True),
        sa.Column("family_id", UUID, sa.ForeignKey("users.refresh_family.id", ondelete="CASCADE"), nullable=False),
        sa.Column("issued_at", TS, nullable=False, server_default=NOW),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        schema=SCHEMA,
    )
    op.create_index("refresh_token_family", "refresh_token", ["family_id"], schema=SCHEMA)
    op.create_table(
        "credential_reveal",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("connection_id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("token_id", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False, server_default=""),
        sa.Column("revealed_at", TS, nullable=False, server_default=NOW),
        schema=SCHEMA,
    )
    op.create_index("credential_reveal_user", "credential_reveal", ["user_id", "id"], schema=SCHEMA)
    op.create_index("credential_reveal_connection", "credential_reveal", ["connection_id", "id"], schema=SCHEMA)


def downgrade() -> None:
    for table in (
        "credential_reveal",
        "refresh_token",
        "refresh_family",
        "user_connection",
        "settings",
        "user_profile",
        "user",
    ):
        op.drop_table(table, schema=SCHEMA)
