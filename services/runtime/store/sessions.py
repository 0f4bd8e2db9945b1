"""Sessions (SQLAlchemy Core). Every query takes the caller's user id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from nexus.kit.db import Database
from nexus.kit.errors import Aborted, FailedPrecondition, NotFound
from services.runtime.domain.sessions import NewSession, Session
from services.runtime.store.tables import session
from services.runtime.store.tasks import TaskStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _not_found() -> NotFound:
    return NotFound("session not found", reason="SESSION_NOT_FOUND")


def _check_etag(current: Session, etag: str) -> None:
    if etag and etag != current.etag:
        raise Aborted("the session changed since it was read; read it again", reason="ETAG_MISMATCH")


def session_cursor(item: Session) -> list[Any]:
    """The keyset after `item` in the sessions' order (what `page` takes as its cursor)."""
    return [(item.updated_at - _EPOCH) // timedelta(microseconds=1), item.id]


class SessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewSession) -> Session:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    insert(session)
                    .values(
                        id=str(uuid.uuid4()),
                        user_id=new.user_id,
                        title=new.title,
                        config=new.config,
                        request_id=new.request_id,
                        version=1,
                    )
                    .on_conflict_do_nothing(constraint="session_request_id_unique")
                    .returning(session)
                )
            ).one_or_none()
            if row is None:
                row = (
                    await conn.execute(
                        sa.select(session).where(
                            session.c.user_id == new.user_id, session.c.request_id == new.request_id
                        )
                    )
                ).one()
        return _session(row)

    async def get(self, user_id: str, session_id: str) -> Session:
        async with self._db.connection() as conn:
            row = (
                await conn.execute(sa.select(session).where(session.c.id == session_id, session.c.user_id == user_id))
            ).one_or_none()
        if row is None:
            raise _not_found()
        return _session(row)

    async def exists(self, user_id: str, session_id: str) -> bool:
        async with self._db.connection() as conn:
            found = await conn.execute(
                sa.select(session.c.id).where(session.c.id == session_id, session.c.user_id == user_id)
            )
            return found.one_or_none() is not None

    async def page(self, user_id: str, limit: int, cursor: list[Any] | None) -> tuple[list[Session], list[Any] | None]:
        """Most recently updated first (keyset on update time and id)."""
        query = sa.select(session).where(session.c.user_id == user_id)
        if cursor is not None:
            updated = _EPOCH + timedelta(microseconds=cursor[0])
            query = query.where(
                sa.tuple_(session.c.updated_at, session.c.id)
                < sa.tuple_(sa.literal(updated, sa.DateTime(timezone=True)), sa.literal(cursor[1], session.c.id.type))
            )
        query = query.order_by(session.c.updated_at.desc(), session.c.id.desc()).limit(limit + 1)
        async with self._db.connection() as conn:
            rows = (await conn.execute(query)).all()
        sessions = [_session(r) for r in rows[:limit]]
        return sessions, None if len(rows) <= limit else session_cursor(sessions[-1])

    async def update(self, user_id: str, session_id: str, changes: dict[str, Any], etag: str) -> Session:
        async with self._db.transaction() as conn:
            row = await self._lock(conn, user_id, session_id)
            _check_etag(_session(row), etag)
            updated = (
                await conn.execute(
                    sa.update(session)
                    .where(session.c.id == session_id)
                    .values(**changes, version=session.c.version + 1, updated_at=sa.func.now())
                    .returning(session)
                )
            ).one()
        return _session(updated)

    async def delete(self, user_id: str, session_id: str, *, force: bool, etag: str) -> None:
        """The session row is locked first: a task being created in it (which locks it too)
        either commits before the count below sees it, or waits and then finds no session."""
        async with self._db.transaction() as conn:
            row = await self._lock(conn, user_id, session_id)
            _check_etag(_session(row), etag)
            if await TaskStore.count_in_session(conn, user_id, session_id):
                if not force:
                    raise FailedPrecondition(
                        "the session still has tasks; delete it with force to archive them",
                        reason="SESSION_HAS_TASKS",
                    )
                await TaskStore.archive_session_tasks(conn, user_id, session_id)
            await conn.execute(sa.delete(session).where(session.c.id == session_id))

    @staticmethod
    async def _lock(conn: Any, user_id: str, session_id: str) -> Any:
        row = (
            await conn.execute(
                sa.select(session).where(session.c.id == session_id, session.c.user_id == user_id).with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise _not_found()
        return row
