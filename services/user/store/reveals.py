"""The audit of credential reveals: who read which connection's credentials, when and why.
Kept apart from the connections (no foreign key): the audit outlives the connection it records."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database, read_page
from nexus.kit.paging import Rows
from services.user.domain.records import ConnectionRecord, RevealRecord
from services.user.store.tables import credential_reveal, reveal_of


@dataclass(frozen=True)
class RevealCursor:
    """Reveals, newest first."""

    id: int


@dataclass(frozen=True)
class RevealFilter:
    # None: every user's (an auditor's service token).
    user_id: str | None
    connection_id: str | None


async def record_reveal(
    conn: AsyncConnection, record: ConnectionRecord, *, actor: str, token_id: str, purpose: str
) -> None:
    """In the transaction that decrypts, so nothing is revealed without its audit row."""
    await conn.execute(
        credential_reveal.insert().values(
            connection_id=record.id, user_id=record.user_id, actor=actor, token_id=token_id, purpose=purpose
        )
    )


class RevealStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, where: RevealFilter, page: Rows[RevealRecord, RevealCursor]) -> None:
        query = sa.select(*credential_reveal.c).order_by(credential_reveal.c.id.desc())
        if where.user_id is not None:
            query = query.where(credential_reveal.c.user_id == where.user_id)
        if where.connection_id is not None:
            query = query.where(credential_reveal.c.connection_id == where.connection_id)
        if page.after is not None:
            query = query.where(credential_reveal.c.id < page.after.id)
        async with self._db.connection() as conn:
            await read_page(conn, query, page, reveal_of)
