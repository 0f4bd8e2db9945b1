"""The ontology schema's Alembic history: upgrade → downgrade → upgrade, with data in it."""

from __future__ import annotations

import psycopg

from launch.registry import ONTOLOGY
from nexus.kit import migrations, postgres
from nexus.kit.config import Settings


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
