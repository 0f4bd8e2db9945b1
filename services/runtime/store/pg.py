"""Raw psycopg connections for the event log's hot path.

SQLAlchemy's async engine costs a greenlet hop and an implicit BEGIN per statement; the append
and read paths instead use autocommit psycopg connections with prepared statements (psycopg
prepares a query after it has run a few times) and pipeline mode. The commit lane and the
listener keep a dedicated connection each (`connect`); reads borrow from a `psycopg_pool` pool.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool

Conn = psycopg.AsyncConnection[Any]
Pool = AsyncConnectionPool[Conn]

# A read connection idle this long is closed (the pool opens another when needed): connections
# do not outlive a failover or sit on server memory for nothing.
READ_IDLE_S = 120.0
READ_LIFETIME_S = 1800.0
# How long a read waits for a free connection before it fails (UNAVAILABLE).
READ_WAIT_S = 10.0


async def connect(
    url: str, *, name: str, lock_timeout_s: float | None = None, keepalive_s: float | None = None
) -> Conn:
    """A dedicated autocommit connection, named `name` in pg_stat_activity. `lock_timeout_s`
    bounds every lock wait of its statements; `keepalive_s` makes the kernel probe an idle TCP
    connection after that long and give up after three unanswered probes (libpq's default is
    the system's, usually two hours)."""
    options: dict[str, Any] = {}
    if lock_timeout_s is not None:
        options["options"] = f"-c lock_timeout={max(1, round(lock_timeout_s * 1000))}"
    if keepalive_s is not None:
        probe = max(1, round(keepalive_s))
        options.update(keepalives=1, keepalives_idle=probe, keepalives_interval=probe, keepalives_count=3)
        options["tcp_user_timeout"] = 4 * probe * 1000
    return await psycopg.AsyncConnection.connect(url, autocommit=True, application_name=name, **options)


def pool(url: str, size: int, *, name: str) -> Pool:
    """Read connections: opened on demand up to `size` (one kept open), replaced when they come
    back broken, recycled when idle or old. Not open yet: `await pool.open()`."""
    return AsyncConnectionPool(
        url,
        kwargs={"autocommit": True, "application_name": name},
        min_size=1,
        max_size=size,
        open=False,
        name=name,
        timeout=READ_WAIT_S,
        max_idle=READ_IDLE_S,
        max_lifetime=READ_LIFETIME_S,
    )


def usable(conn: Conn) -> bool:
    return not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE


def broken(conn: Conn) -> bool:
    """The connection itself failed (not just a statement on it)."""
    return conn.closed or conn.pgconn.status == pq.ConnStatus.BAD


async def rollback(conn: Conn) -> None:
    """Ends a failed explicit transaction, so the connection can be used again."""
    if conn.closed or conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        return
    try:
        await conn.execute(b"ROLLBACK")
    except psycopg.Error:
        await conn.close()
