"""Raw psycopg connections for the event log's hot path.

SQLAlchemy's async engine costs a greenlet hop and an implicit BEGIN per statement; the append
and read paths instead use autocommit psycopg connections with prepared statements (psycopg
prepares a query after it has run a few times) and pipeline mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import pq

Conn = psycopg.AsyncConnection[Any]


async def connect(url: str) -> Conn:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, application_name="nexus-runtime")


def usable(conn: Conn) -> bool:
    return not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE


async def rollback(conn: Conn) -> None:
    """Ends a failed explicit transaction, so the connection can be used again."""
    if conn.closed or conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        return
    try:
        await conn.execute(b"ROLLBACK")
    except psycopg.Error:
        await conn.close()


class Connections:
    """A small fixed pool: connections are opened on demand, up to `size`, and a connection that
    comes back broken is closed and replaced by the next borrower."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._size = size
        # None in the queue is a freed slot: its taker opens a fresh connection.
        self._idle: asyncio.LifoQueue[Conn | None] = asyncio.LifoQueue()
        self._opened = 0
        self._all: set[Conn] = set()

    @asynccontextmanager
    async def borrow(self) -> AsyncIterator[Conn]:
        conn = await self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    async def _take(self) -> Conn:
        if self._idle.empty() and self._opened < self._size:
            return await self._open()
        conn = await self._idle.get()
        return conn if conn is not None else await self._open()

    async def _open(self) -> Conn:
        self._opened += 1
        try:
            conn = await connect(self._url)
        except BaseException:
            self._opened -= 1
            if self._opened < self._size:
                self._idle.put_nowait(None)
            raise
        self._all.add(conn)
        return conn

    def _give_back(self, conn: Conn) -> None:
        if usable(conn):
            self._idle.put_nowait(conn)
            return
        self._all.discard(conn)
        self._opened -= 1
        self._idle.put_nowait(None)
        if not conn.closed:
            asyncio.get_running_loop().create_task(conn.close())

    async def close(self) -> None:
        for conn in list(self._all):
            await conn.close()
        self._all.clear()
        self._opened = 0
