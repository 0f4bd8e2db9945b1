"""Sessions (SQLAlchemy Core). Every query takes the caller's user id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit import paging
from nexus.kit.db import Database, bumped, locked_version, read_page
from nexus.kit.errors import FailedPrecondition, not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.runtime.domain.sessions import NewSession, Session
from services.runtime.store.tables import session
from services.runtime.store.tasks import TaskStore


@dataclass(frozen=True)
class SessionCursor:
    """The sessions' order: most recently updated first."""

    updated_at: datetime
    id: paging.UUID


def _session(row: Any) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        title=row.title,
        config=row.config,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _mine(user_id: str, session_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return session.c.id == session_id, session.c.user_id == user_id


class SessionStore:
    def __init__(self, db: Database, requests: RequestLog) -> None:
        self._db = db
        self._requests = requests

    async def create(self, new: NewSession, key: RequestKey | None) -> Session:
        session_id = str(uuid.uuid4())
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, session_id)
            if first is not None:
                return await self._get(conn, new.user_id, first)
            row = (
                await conn.execute(
                    session.insert()
                    .values(id=session_id, user_id=new.user_id, title=new.title, config=new.config, version=1)
                    .returning(session)
                )
            ).one()
        return _session(row)

    async def get(self, user_id: str, session_id: str) -> Session:
        async with self._db.connection() as conn:
            return await self._get(conn, user_id, session_id)

    @staticmethod
    async def _get(conn: AsyncConnection, user_id: str, session_id: str) -> Session:
        row = (await conn.execute(sa.select(session).where(*_mine(user_id, session_id)))).one_or_none()
        if row is None:
            raise not_found("session")
        return _session(row)

    async def exists(self, user_id: str, session_id: str) -> bool:
        async with self._db.connection() as conn:
            found = await conn.execute(sa.select(session.c.id).where(*_mine(user_id, session_id)))
            return found.one_or_none() is not None

    async def page(self, user_id: str, page: Rows[Session, SessionCursor]) -> None:
        """Most recently updated first (keyset on update time and id)."""
        query = sa.select(session).where(session.c.user_id == user_id)
        after = page.after
        if after is not None:
            query = query.where(
                sa.tuple_(session.c.updated_at, session.c.id)
                < sa.tuple_(
                    sa.literal(after.updated_at, session.c.updated_at.type), sa.literal(after.id, session.c.id.type)
                )
            )
        query = query.order_by(session.c.updated_at.desc(), session.c.id.desc())
        async with self._db.connection() as conn:
            await read_page(conn, query, page, _session)

    async def update(self, user_id: str, session_id: str, changes: dict[str, Any], etag: str) -> Session:
        async with self._db.transaction() as conn:
            await self._lock(conn, user_id, session_id, etag)
            updated = (
                await conn.execute(
                    sa.update(session)
                    .where(session.c.id == session_id)
                    .values(**changes, **bumped(session))
                    .returning(session)
                )
            ).one()
        return _session(updated)

    async def delete(self, user_id: str, session_id: str, *, force: bool, etag: str) -> None:
        """The session row is locked first: a task being created in it (which locks it too)
        either commits before the count below sees it, or waits and then finds no session."""
        async with self._db.transaction() as conn:
            await self._lock(conn, user_id, session_id, etag)
            if await TaskStore.count_in_session(conn, user_id, session_id):
                if not force:
                    raise FailedPrecondition(
                        "the session still has tasks; delete it with force to archive them",
                        reason="SESSION_HAS_TASKS",
                    )
                await TaskStore.archive_session_tasks(conn, user_id, session_id)
            await conn.execute(sa.delete(session).where(session.c.id == session_id))

    @staticmethod
    async def _lock(conn: AsyncConnection, user_id: str, session_id: str, etag: str) -> None:
        version = await locked_version(conn, session.c.version, *_mine(user_id, session_id))
        if version is None:
            raise not_found("session")
        check_etag(etag, version, "session")
