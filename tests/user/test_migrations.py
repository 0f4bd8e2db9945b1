"""The user schema's Alembic history: up, down and up again with data in every table."""

from __future__ import annotations

import uuid

import psycopg

from launch.registry import USER
from nexus.kit import migrations
from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from services.user.store import tables as store

REQUEST_ID = "0b8a2b4e-64a4-4b8e-9f6a-3c0e1d2f4a5b"
TABLES = sorted(t.name for t in store.metadata.tables.values())


def connect(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(service_url(settings, "user", driver="postgresql"), autocommit=True)


def fill(conn: psycopg.Connection) -> None:
    user_id, family, connection = (str(uuid.uuid4()) for _ in range(3))
    conn.execute(
        "INSERT INTO users.user (id, email, email_key, password_hash) VALUES (%s, 'A@x.io', 'a@x.io', '$argon2id$')",
        [user_id],
    )
    conn.execute("INSERT INTO users.user_profile (user_id, nickname) VALUES (%s, 'a')", [user_id])
    conn.execute(
        "INSERT INTO users.settings (id, user_id, key, value) VALUES (%s, %s, 'theme', '\"dark\"')",
        [str(uuid.uuid4()), user_id],
    )
    conn.execute(
        "INSERT INTO users.user_connection (id, user_id, agent_id, provider, display_name, encrypted_credentials,"
        " key_id, credentials_fingerprint) VALUES (%s, %s, 'agent_a', 'notion', 'n', '\\x00', 'k1', 'f')",
        [connection, user_id],
    )
    conn.execute("INSERT INTO users.refresh_family (id, user_id) VALUES (%s, %s)", [family, user_id])
    conn.execute(
        "INSERT INTO users.refresh_token (token_hash, family_id, expires_at) VALUES ('\\x01', %s, now())", [family]
    )
    conn.execute(
        "INSERT INTO users.credential_reveal (connection_id, user_id, actor, token_id) VALUES (%s, %s, 's', 'j')",
        [connection, user_id],
    )
    conn.execute(
        "INSERT INTO users.revocation (session_digest, expires_at) VALUES (sha256(%s::bytea), now())",
        [family.encode()],
    )
    conn.execute(
        "INSERT INTO users.request_log (principal, method, request_id, request_hash, resource_id, expires_at)"
        " VALUES (%s, 'CreateConnection', %s, 'h', %s, now() + interval '1 day')",
        [user_id, REQUEST_ID, connection],
    )


def tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'users' AND tablename <> 'alembic_version'")
    return sorted(r[0] for r in rows)


def test_upgrade_downgrade_upgrade_with_data(scratch_settings: Settings) -> None:
    migrations.upgrade(scratch_settings, USER)
    with connect(scratch_settings) as conn:
        assert tables(conn) == TABLES
        fill(conn)
        assert all(conn.execute(f'SELECT count(*) FROM users."{t}"').fetchone() == (1,) for t in TABLES)
    migrations.downgrade(scratch_settings, USER, "base")
    with connect(scratch_settings) as conn:
        assert tables(conn) == []
    migrations.upgrade(scratch_settings, USER)
    with connect(scratch_settings) as conn:
        assert tables(conn) == TABLES
        fill(conn)


def test_revocations_downgrade_alone_and_come_back(scratch_settings: Settings) -> None:
    migrations.upgrade(scratch_settings, USER)
    with connect(scratch_settings) as conn:
        fill(conn)
    migrations.downgrade(scratch_settings, USER, "user_0001")
    with connect(scratch_settings) as conn:
        assert "revocation" not in tables(conn)
        assert conn.execute("SELECT count(*) FROM users.refresh_family").fetchone() == (1,)
    migrations.upgrade(scratch_settings, USER)
    with connect(scratch_settings) as conn:
        assert "revocation" in tables(conn)


def test_the_store_tables_match_the_migrated_schema(settings: Settings) -> None:
    """The Core table definitions in store.py and the hand-written migration must not drift."""
    with connect(settings) as conn:
        for table in store.metadata.tables.values():
            rows = conn.execute(
                "SELECT column_name, is_nullable = 'YES' FROM information_schema.columns"
                " WHERE table_schema = 'users' AND table_name = %s",
                [table.name],
            )
            migrated = {name: nullable for name, nullable in rows}
            declared = {c.name: bool(c.nullable) and not c.primary_key for c in table.columns}
            assert migrated == declared, table.name


def _request_ids(conn: psycopg.Connection) -> list[tuple[str | None]]:
    return [
        (None if r[0] is None else str(r[0]),) for r in conn.execute("SELECT request_id FROM users.user_connection")
    ]


def test_the_request_log_downgrades_to_request_ids_on_connections_and_comes_back(scratch_settings: Settings) -> None:
    migrations.upgrade(scratch_settings, USER)
    with connect(scratch_settings) as conn:
        fill(conn)
    migrations.downgrade(scratch_settings, USER, "user_0002")
    with connect(scratch_settings) as conn:
        assert "request_log" not in tables(conn)
        assert _request_ids(conn) == [(REQUEST_ID,)]  # what the log remembered is on the row again
    migrations.upgrade(scratch_settings, USER)
    with connect(scratch_settings) as conn:
        assert tables(conn) == TABLES
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'users' AND table_name = 'user_connection'"
        ).fetchall()
        assert ("request_id",) not in columns
        assert conn.execute("SELECT count(*) FROM users.user_connection").fetchone() == (1,)
