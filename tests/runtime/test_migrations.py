"""The runtime's Alembic history goes up, down and up again, with data in the tables."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from launch.registry import RUNTIME
from nexus.kit import migrations
from nexus.kit.config import Settings
from nexus.kit.postgres import service_url


def _connect(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(service_url(settings, "runtime", driver="postgresql"), autocommit=True)


def _insert_task_with_events(settings: Settings) -> str:
    task_id = str(uuid.uuid4())
    with _connect(settings) as conn:
        conn.execute(
            "INSERT INTO runtime.task (id, user_id, agent_id, trigger_source, title, status, last_seq)"
            " VALUES (%s, 'u1', 'scanner', 'chat_manual', 't', 'queued', 2)",
            [task_id],
        )
        conn.execute(
            "INSERT INTO runtime.task_event (task_id, seq, role, type, client_key)"
            " VALUES (%s, 1, 'system', 'status', NULL), (%s, 2, 'user', 'message', 'k')",
            [task_id, task_id],
        )
    return task_id


def _tables(settings: Settings) -> set[str]:
    with _connect(settings) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'runtime'").fetchall()
    return {row[0] for row in rows}


def test_upgrade_downgrade_upgrade_with_data(scratch_settings: Settings) -> None:
    migrations.upgrade(scratch_settings, RUNTIME)
    task_id = _insert_task_with_events(scratch_settings)
    with _connect(scratch_settings) as conn:
        # The constraints hold: a duplicate client key and a lease outside `running` are refused.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO runtime.task_event (task_id, seq, role, type, client_key)"
                " VALUES (%s, 3, 'user', 'message', 'k')",
                [task_id],
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE runtime.task SET lease_holder = 'w' WHERE id = %s", [task_id])
        count = conn.execute("SELECT count(*) FROM runtime.task_event").fetchone()
    assert count == (2,)
    migrations.downgrade(scratch_settings, RUNTIME, "base")
    assert _tables(scratch_settings) <= {"alembic_version"}
    migrations.upgrade(scratch_settings, RUNTIME)
    assert {"task", "task_event"} <= _tables(scratch_settings)
    _insert_task_with_events(scratch_settings)


def test_the_workspace_migration_gives_existing_session_ids_a_session_and_goes_down_cleanly(
    scratch_settings: Settings,
) -> None:
    migrations.upgrade(scratch_settings, RUNTIME, "0001")
    task_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    with _connect(scratch_settings) as conn:
        conn.execute(
            "INSERT INTO runtime.task (id, user_id, agent_id, trigger_source, title, status, session_id)"
            " VALUES (%s, 'u1', 'scanner', 'chat_manual', 't', 'queued', %s)",
            [task_id, session_id],
        )
    migrations.upgrade(scratch_settings, RUNTIME)
    workspace = {"session", "task_plan", "task_context", "task_memory", "artifact", "schedule"}
    assert workspace <= _tables(scratch_settings)
    with _connect(scratch_settings) as conn:
        assert conn.execute("SELECT user_id FROM runtime.session WHERE id = %s", [session_id]).fetchall() == [("u1",)]
        # An active schedule has a next time; a paused one has none.
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO runtime.schedule (id, user_id, cron, time_zone, agent_id, title, state)"
                " VALUES (gen_random_uuid(), 'u1', '* * * * *', 'UTC', 'scanner', 't', 'active')"
            )
    migrations.downgrade(scratch_settings, RUNTIME, "0001")
    assert not workspace & _tables(scratch_settings)
    with _connect(scratch_settings) as conn:
        assert conn.execute("SELECT count(*) FROM runtime.task").fetchone() == (1,)


def _columns(settings: Settings, table: str) -> set[str]:
    with _connect(settings) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'runtime' AND table_name = %s",
            [table],
        ).fetchall()
    return {row[0] for row in rows}


def test_the_vocabulary_migration_renames_edit_version_to_version_keeping_the_counts_and_goes_back(
    scratch_settings: Settings,
) -> None:
    migrations.upgrade(scratch_settings, RUNTIME, "0002")
    task_id = _insert_task_with_events(scratch_settings)
    session_id = str(uuid.uuid4())
    with _connect(scratch_settings) as conn:
        conn.execute("UPDATE runtime.task SET edit_version = 7, state_version = 3 WHERE id = %s", [task_id])
        conn.execute("INSERT INTO runtime.session (id, user_id, edit_version) VALUES (%s, 'u1', 4)", [session_id])
    migrations.upgrade(scratch_settings, RUNTIME, "0003")
    renamed = ("task", "session", "artifact", "schedule")
    for table in renamed:
        assert {"version", "created_at", "updated_at"} <= _columns(scratch_settings, table)
        assert "edit_version" not in _columns(scratch_settings, table)
    with _connect(scratch_settings) as conn:
        assert conn.execute("SELECT version, state_version FROM runtime.task WHERE id = %s", [task_id]).fetchall() == [
            (7, 3)
        ]
        assert conn.execute("SELECT version FROM runtime.session WHERE id = %s", [session_id]).fetchall() == [(4,)]
        # The defaults came along: a new row starts at version 1.
        conn.execute("INSERT INTO runtime.session (id, user_id) VALUES (gen_random_uuid(), 'u2')")
        assert conn.execute("SELECT version FROM runtime.session WHERE user_id = 'u2'").fetchall() == [(1,)]
    migrations.downgrade(scratch_settings, RUNTIME, "0002")
    for table in renamed:
        assert "edit_version" in _columns(scratch_settings, table)
        assert "version" not in _columns(scratch_settings, table)
    with _connect(scratch_settings) as conn:
        assert conn.execute("SELECT edit_version FROM runtime.task WHERE id = %s", [task_id]).fetchall() == [(7,)]
        assert conn.execute("SELECT edit_version FROM runtime.session WHERE id = %s", [session_id]).fetchall() == [(4,)]
