"""The users schema's tables (SQLAlchemy Core, mirroring the hand-written migrations) and how
their rows become records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from nexus.kit import idempotency
from services.user.domain.records import (
    ConnectionRecord,
    ProfileRecord,
    RevealRecord,
    SettingRecord,
    StoredCredentials,
    UserRecord,
)

SCHEMA = "users"
metadata = sa.MetaData(schema=SCHEMA)
TS = sa.TIMESTAMP(timezone=True)
UUID = pg.UUID(as_uuid=False)


def now() -> sa.ColumnElement[datetime]:
    return sa.func.now()


user = sa.Table(
    "user",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("email_key", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", TS, nullable=False, server_default=now()),
    sa.Column("updated_at", TS, nullable=False, server_default=now()),
    sa.Column("deactivated_at", TS),
)

user_profile = sa.Table(
    "user_profile",
    metadata,
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), primary_key=True),
    sa.Column("nickname", sa.Text, nullable=False),
    sa.Column("avatar_url", sa.Text),
    sa.Column("preferences", pg.JSONB, nullable=False),
    sa.Column("principles", pg.JSONB, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False, server_default=now()),
    sa.Column("updated_at", TS, nullable=False, server_default=now()),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("value", pg.JSONB(none_as_null=False), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False, server_default=now()),
    sa.Column("updated_at", TS, nullable=False, server_default=now()),
    sa.UniqueConstraint("user_id", "key", name="settings_user_id_key_key"),
)

user_connection = sa.Table(
    "user_connection",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("agent_id", sa.Text, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("encrypted_credentials", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("credentials_fingerprint", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    sa.Column("last_verified_at", TS),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False, server_default=now()),
    sa.Column("updated_at", TS, nullable=False, server_default=now()),
)

refresh_family = sa.Table(
    "refresh_family",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", TS, nullable=False, server_default=now()),
    sa.Column("last_used_at", TS, nullable=False, server_default=now()),
    sa.Column("revoked_at", TS),
    sa.Column("revoked_reason", sa.Text),
)

refresh_token = sa.Table(
    "refresh_token",
    metadata,
    sa.Column("token_hash", sa.LargeBinary, primary_key=True),
    sa.Column("family_id", UUID, sa.ForeignKey(refresh_family.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("issued_at", TS, nullable=False, server_default=now()),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("used_at", TS),
)

revocation = sa.Table(
    "revocation",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("session_digest", sa.LargeBinary, nullable=False),
    sa.Column("revoked_at", TS, nullable=False, server_default=now()),
    sa.Column("expires_at", TS, nullable=False),
)

credential_reveal = sa.Table(
    "credential_reveal",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    # No foreign keys: the audit log outlives the connection it records.
    sa.Column("connection_id", UUID, nullable=False),
    sa.Column("user_id", UUID, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("token_id", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("revealed_at", TS, nullable=False, server_default=now()),
)

request_log = idempotency.table(metadata)

# What a connection's reads return: never the ciphertext.
CONNECTION_COLUMNS = [c for c in user_connection.c if c.name not in ("encrypted_credentials", "key_id")]
STORED_COLUMNS = [
    user_connection.c.id,
    user_connection.c.user_id,
    user_connection.c.provider,
    user_connection.c.key_id,
    user_connection.c.encrypted_credentials,
]


def user_of(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deactivated_at=row.deactivated_at,
    )


def profile_of(row: Any) -> ProfileRecord:
    return ProfileRecord(
        user_id=row.user_id,
        nickname=row.nickname,
        avatar_url=row.avatar_url,
        preferences=row.preferences,
        principles=row.principles,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def setting_of(row: Any) -> SettingRecord:
    return SettingRecord(
        id=row.id,
        user_id=row.user_id,
        key=row.key,
        value=row.value,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def connection_of(row: Any) -> ConnectionRecord:
    return ConnectionRecord(
        id=row.id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        provider=row.provider,
        display_name=row.display_name,
        status=row.status,
        credentials_fingerprint=row.credentials_fingerprint,
        last_verified_at=row.last_verified_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def stored_of(row: Any) -> StoredCredentials:
    return StoredCredentials(
        connection_id=row.id,
        user_id=row.user_id,
        provider=row.provider,
        key_id=row.key_id,
        blob=bytes(row.encrypted_credentials),
    )


def reveal_of(row: Any) -> RevealRecord:
    return RevealRecord(
        id=row.id,
        connection_id=row.connection_id,
        user_id=row.user_id,
        actor=row.actor,
        token_id=row.token_id,
        purpose=row.purpose,
        revealed_at=row.revealed_at,
    )
