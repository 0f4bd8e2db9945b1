"""The runtime's Alembic history goes up, down and up again, with data in the tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from launch.registry import RUNTIME
from nexus.kit import migrations
from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from services.runtime.store import tables as store


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


def test_the_store_tables_match_the_migrated_schema(settings: Settings) -> None:
    """The Core table definitions in store/tables.py and the hand-written migrations must not drift."""
    with _connect(settings) as conn:
        for table in store.metadata.tables.values():
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'runtime' AND table_name = %s",
                [table.name],
            )
            assert {name for (name,) in rows} == {c.name for c in table.columns}, table.name


REQUEST_ID = "0b8a2b4e-64a4-4b8e-9f6a-3c0e1d2f4a5b"
FIRED_AT = datetime(2025, 6, 1, 8, tzinfo=UTC)


def _request_id(conn: psycopg.Connection, table: str, row_id: str) -> str | None:
    found = conn.execute(f"SELECT request_id FROM runtime.{table} WHERE id = %s", [row_id]).fetchone()
    assert found is not None
    return None if found[0] is None else str(found[0])


def test_the_request_log_migration_retires_request_id_columns_keeps_firings_unique_and_goes_back(
    scratch_settings: Settings,
) -> None:
    migrations.upgrade(scratch_settings, RUNTIME, "0003")
    schedule_id, fired, older, session_id = (str(uuid.uuid4()) for _ in range(4))
    with _connect(scratch_settings) as conn:
        conn.execute(
            "INSERT INTO runtime.schedule (id, user_id, cron, time_zone, agent_id, title, state, last_fire_at,"
            " last_task_id, request_id) VALUES (%s, 'u1', '0 * * * *', 'UTC', 'scanner', 't', 'paused', %s, %s, %s)",
            [schedule_id, FIRED_AT, fired, REQUEST_ID],
        )
        for task_id in (fired, older):
            conn.execute(
                "INSERT INTO runtime.task (id, user_id, agent_id, trigger_source, title, status, schedule_id,"
                " request_id) VALUES (%s, 'u1', 'scanner', 'cron_trigger', 't', 'queued', %s, gen_random_uuid())",
                [task_id, schedule_id],
            )
        conn.execute(
            "INSERT INTO runtime.session (id, user_id, request_id) VALUES (%s, 'u1', %s)", [session_id, REQUEST_ID]
        )
    migrations.upgrade(scratch_settings, RUNTIME, "0004")
    for table in ("task", "session", "artifact", "schedule"):
        assert "request_id" not in _columns(scratch_settings, table)
    assert "request_log" in _tables(scratch_settings)
    with _connect(scratch_settings) as conn:
        # The last task a schedule fired knows its due time; no other can fire that due time again.
        assert conn.execute(
            "SELECT id::text, scheduled_at FROM runtime.task WHERE schedule_id = %s AND scheduled_at IS NOT NULL",
            [schedule_id],
        ).fetchall() == [(fired, FIRED_AT)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO runtime.task (id, user_id, agent_id, trigger_source, title, status, schedule_id,"
                " scheduled_at) VALUES (gen_random_uuid(), 'u1', 'scanner', 'cron_trigger', 't', 'queued', %s, %s)",
                [schedule_id, FIRED_AT],
            )
        conn.execute(
            "INSERT INTO runtime.request_log (principal, method, request_id, request_hash, resource_id, expires_at)"
            " VALUES ('u1', 'CreateSession', %s, 'h', %s, now() + interval '1 day')",
            [REQUEST_ID, session_id],
        )
    migrations.downgrade(scratch_settings, RUNTIME, "0003")
    assert "request_log" not in _tables(scratch_settings)
    assert "scheduled_at" not in _columns(scratch_settings, "task")
    with _connect(scratch_settings) as conn:
        # What the log remembered is on its row again; the fired task's id is derived again.
        assert _request_id(conn, "session", session_id) == REQUEST_ID
        expected = uuid.uuid5(
            uuid.UUID("6f1c1a4e-2b7d-5c55-9a59-3f5f0f0c9e21"), f"{schedule_id}@{FIRED_AT.timestamp():.6f}"
        )
        assert _request_id(conn, "task", fired) == str(expected)
        assert _request_id(conn, "task", older) is None  # its id could not be kept
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO runtime.session (id, user_id, request_id) VALUES (gen_random_uuid(), 'u1', %s)",
                [REQUEST_ID],
            )
    migrations.upgrade(scratch_settings, RUNTIME)
    assert "request_log" in _tables(scratch_settings)
