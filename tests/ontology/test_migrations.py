"""The ontology schema's Alembic history: upgrade → downgrade → upgrade, with data in it."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from launch.registry import ONTOLOGY
from nexus.kit import migrations, postgres
from nexus.kit.config import Settings
from services.ontology.store import tables


def _connect(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(postgres.service_url(settings, "ontology", driver="postgresql"), autocommit=True)


def _seed(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO ontology.agent (id, name) VALUES ('a1', 'Agent')")
    conn.execute(
        "INSERT INTO ontology.skill (id, agent_id, name, definition, created_by_user_id) "
        """VALUES ('s1', 'a1', 'Skill', '{"inputs": [], "steps": []}', NULL), ('usr_1', 'a1', 'Mine', '{}', 'u1')"""
    )
    conn.execute(
        "INSERT INTO ontology.command (trigger, owner_user_id, agent_id, target_skill_id) "
        "VALUES ('/go', NULL, 'a1', 's1'), ('/go', 'u1', 'a1', 'usr_1')"
    )
    conn.execute("INSERT INTO ontology.team (id, name) VALUES ('7d8f2f8e-9c4a-4d7e-8a47-1b7c2a9e0f11', 'T')")
    conn.execute(
        "INSERT INTO ontology.team_participant (team_id, position, agent_id) "
        "VALUES ('7d8f2f8e-9c4a-4d7e-8a47-1b7c2a9e0f11', 0, 'a1')"
    )


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'ontology'").fetchall()
    return {r[0] for r in rows}


def test_upgrade_downgrade_upgrade_with_data(scratch_settings: Settings) -> None:
    migrations.upgrade(scratch_settings, ONTOLOGY)
    with _connect(scratch_settings) as conn:
        assert {"agent", "skill", "command", "team", "team_participant", "request_log"} <= _tables(conn)
        _seed(conn)
        # The constraints hold: one system command per trigger, a command's skill is its agent's.
        for statement in (
            "INSERT INTO ontology.command (trigger, agent_id, target_skill_id) VALUES ('/go', 'a1', 's1')",
            "INSERT INTO ontology.command (trigger, agent_id, target_skill_id) VALUES ('/Bad', 'a1', 's1')",
        ):
            try:
                conn.execute(statement)
            except psycopg.errors.IntegrityError:
                pass
            else:
                raise AssertionError(f"accepted: {statement}")

    migrations.downgrade(scratch_settings, ONTOLOGY, "base")
    with _connect(scratch_settings) as conn:
        assert _tables(conn) == {"alembic_version"}

    migrations.upgrade(scratch_settings, ONTOLOGY)
    with _connect(scratch_settings) as conn:
        assert conn.execute("SELECT count(*) FROM ontology.agent").fetchone() == (0,)
        _seed(conn)
        assert conn.execute("SELECT count(*) FROM ontology.command").fetchone() == (2,)


def _columns(conn: psycopg.Connection, table: str) -> dict[str, bool]:
    rows = conn.execute(
        "SELECT column_name, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_schema = 'ontology' AND table_name = %s",
        [table],
    )
    return {name: nullable for name, nullable in rows}


def test_the_vocabulary_renames_keep_the_data_and_downgrade_restores_the_old_names(scratch_settings: Settings) -> None:
    migrations.upgrade(scratch_settings, ONTOLOGY, "0001_ontology")
    with _connect(scratch_settings) as conn:
        _seed(conn)
        conn.execute("UPDATE ontology.agent SET revision = 7")
        conn.execute(
            "INSERT INTO ontology.request_log (principal, method, request_id, request_hash, resource_id)"
            " VALUES ('u1', 'CreateTeam', gen_random_uuid(), 'h', 'a1')"
        )
        before = conn.execute("SELECT create_time, update_time, snapshot_time FROM ontology.agent").fetchone()

    migrations.upgrade(scratch_settings, ONTOLOGY)
    with _connect(scratch_settings) as conn:
        for table in ("agent", "skill", "command", "team"):
            assert {"created_at", "updated_at", "version"} <= set(_columns(conn, table)), table
            assert not {"create_time", "update_time", "revision"} & set(_columns(conn, table)), table
        assert conn.execute("SELECT created_at, updated_at, snapshot_at FROM ontology.agent").fetchone() == before
        assert conn.execute("SELECT version FROM ontology.agent").fetchone() == (7,)
        lifetime = conn.execute("SELECT expires_at - created_at FROM ontology.request_log").fetchone()
        assert lifetime == (timedelta(days=1),)

    migrations.downgrade(scratch_settings, ONTOLOGY, "0001_ontology")
    with _connect(scratch_settings) as conn:
        assert "expires_at" not in _columns(conn, "request_log")
        assert conn.execute("SELECT create_time, update_time, snapshot_time FROM ontology.agent").fetchone() == before
        assert conn.execute("SELECT revision FROM ontology.agent").fetchone() == (7,)
        assert conn.execute("SELECT count(*) FROM ontology.request_log").fetchone() == (1,)


def test_the_store_tables_match_the_migrated_schema(settings: Settings) -> None:
    """The Core tables of the store and the hand-written migrations must not drift."""
    with _connect(settings) as conn:
        for table in tables.metadata.tables.values():
            declared = {c.name: bool(c.nullable) and not c.primary_key for c in table.columns}
            assert _columns(conn, table.name) == declared, table.name
