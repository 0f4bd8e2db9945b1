"""Helpers for tests that hold task rows locked and watch Postgres from outside the runtime.

Everything here is async: the runtime under test shares the test's event loop, and a blocking
call could wait on a lock that only the loop can release.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from nexus.kit import postgres
from nexus.kit.config import Settings


async def admin_sql(settings: Settings, statement: str, *params: Any) -> list[Any]:
    """As the cluster's admin, in the session's database: sees every backend's activity."""
    url = postgres.database_url(postgres.admin_url(settings), settings.database_name)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


@asynccontextmanager
async def row_locked(settings: Settings, task_id: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """Another transaction (an operator's session, a slow replica) holding the task's row lock
    until the block ends."""
    url = postgres.service_url(settings, "runtime", driver="postgresql")
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("SELECT 1 FROM runtime.task WHERE id = %s FOR UPDATE", [task_id])
        try:
            yield conn
        finally:
            await conn.rollback()


async def lock_waiters(settings: Settings) -> int:
    """Backends of the session's database waiting for a lock right now."""
    rows = await admin_sql(
        settings,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return int(rows[0][0])
