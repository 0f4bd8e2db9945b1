"""The database handle each service's store uses: an async SQLAlchemy engine on the service's
own role, with transactions as context managers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from nexus.kit.config import Settings
from nexus.kit.paging import FETCH_ROWS, Rows
from nexus.kit.postgres import service_url

T = TypeVar("T")


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def for_service(cls, settings: Settings, service: str, *, pool_size: int | None = None) -> Database:
        size = pool_size or settings.db_pool_size
        engine = create_async_engine(
            service_url(settings, service),
            pool_size=size,
            max_overflow=size,
            pool_timeout=10,
            pool_pre_ping=False,
            # Each connection knows who it is in pg_stat_activity.
            connect_args={"application_name": f"nexus-{service}"},
        )
        return cls(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block exits normally, rolled back otherwise."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (autobegin; rolled back on exit)."""
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


def bumped(table: sa.Table) -> dict[str, Any]:
    """What every edit of a versioned row sets (every schema names them alike): its etag's
    `version`, one up, and `updated_at`."""
    return {"version": table.c.version + 1, "updated_at": sa.func.now()}


async def locked_version(conn: AsyncConnection, version: sa.Column[int], *where: sa.ColumnElement[bool]) -> int | None:
    """The etag version of the row `where` selects, locked (FOR UPDATE) until the transaction
    ends, so the write that follows an etag check is the one the check allowed; None: no row."""
    found: int | None = (await conn.execute(sa.select(version).where(*where).with_for_update())).scalar_one_or_none()
    return found


async def read_page(
    conn: AsyncConnection, query: sa.Select[Any], page: Rows[T, Any], item_of: Callable[[sa.Row[Any]], T]
) -> None:
    """Reads the rows of `query` (in its order, limited to what `page` asks for) into `page` until
    it is complete. The rows come from a server-side cursor, FETCH_ROWS at a time, so a page that
    ends early at the message limit does not load the rest of its rows first."""
    limited = query.limit(page.limit).execution_options(yield_per=min(page.limit, FETCH_ROWS))
    async with conn.stream(limited) as result:
        async for row in result:
            if not page.add(item_of(row)):
                break
