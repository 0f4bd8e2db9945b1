"""Connections: the credentials a user grants an agent, sealed per row (DESIGN §4)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database, bumped, locked_version, read_page
from nexus.kit.errors import FailedPrecondition, not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import UUID, Rows
from nexus.kit.protos import check_etag
from nexus.kit.validation import JSON
from services.user.domain.envelope import RowBinding, Sealer
from services.user.domain.records import ConnectionRecord, StoredCredentials
from services.user.store.reveals import record_reveal
from services.user.store.tables import (
    CONNECTION_COLUMNS,
    TS,
    connection_of,
    now,
    stored_of,
    user_connection,
)


@dataclass(frozen=True)
class ConnectionCursor:
    """A user's connections, oldest first."""

    created_at: datetime
    id: UUID


def _owned_by(user_id: str, connection_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return user_connection.c.id == connection_id, user_connection.c.user_id == user_id


async def _owned(conn: AsyncConnection, user_id: str, connection_id: str) -> ConnectionRecord:
    row = (await conn.execute(sa.select(*CONNECTION_COLUMNS).where(*_owned_by(user_id, connection_id)))).one_or_none()
    if row is None:
        raise not_found("connection")
    return connection_of(row)


class ConnectionStore:
    def __init__(self, db: Database, requests: RequestLog) -> None:
        self._db = db
        self._requests = requests

    async def create(
        self,
        user_id: str,
        *,
        agent_id: str,
        provider: str,
        display_name: str,
        status: str,
        key: RequestKey | None,
        seal: Sealer,
    ) -> ConnectionRecord:
        """Inserts a connection; a repeat of a request (its request_id) returns the connection
        the first one created, as it is now."""
        connection_id = str(uuid.uuid4())
        async with self._db.transaction() as conn:
            first = await self._requests.claim(conn, key, connection_id)
            if first is not None:
                return await _owned(conn, user_id, first)
            sealed = seal(RowBinding(connection_id=connection_id, user_id=user_id, provider=provider))
            row = (
                await conn.execute(
                    pg.insert(user_connection)
                    .values(
                        id=connection_id,
                        user_id=user_id,
                        agent_id=agent_id,
                        provider=provider,
                        display_name=display_name,
                        status=status,
                        encrypted_credentials=sealed.blob,
                        key_id=sealed.kid,
                        credentials_fingerprint=sealed.fingerprint,
                    )
                    .returning(*CONNECTION_COLUMNS)
                )
            ).one()
            return connection_of(row)

    async def get(self, user_id: str, connection_id: str) -> ConnectionRecord:
        async with self._db.connection() as conn:
            return await _owned(conn, user_id, connection_id)

    async def page(self, user_id: str, agent_id: str | None, page: Rows[ConnectionRecord, ConnectionCursor]) -> None:
        query = sa.select(*CONNECTION_COLUMNS).where(user_connection.c.user_id == user_id)
        if agent_id is not None:
            query = query.where(user_connection.c.agent_id == agent_id)
        if page.after is not None:
            after = sa.tuple_(
                sa.literal(page.after.created_at, TS), sa.literal(page.after.id, user_connection.c.id.type)
            )
            query = query.where(sa.tuple_(user_connection.c.created_at, user_connection.c.id) > after)
        query = query.order_by(user_connection.c.created_at, user_connection.c.id)
        async with self._db.connection() as conn:
            await read_page(conn, query, page, connection_of)

    async def update(
        self,
        user_id: str,
        connection_id: str,
        *,
        etag: str,
        values: dict[str, Any],
        seal: Sealer | None,
    ) -> ConnectionRecord:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(user_connection.c.version, user_connection.c.provider)
                    .where(*_owned_by(user_id, connection_id))
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise not_found("connection")
            check_etag(etag, row.version, "connection")
            changes = dict(values)
            if seal is not None:
                sealed = seal(RowBinding(connection_id=connection_id, user_id=user_id, provider=row.provider))
                changes.update(
                    encrypted_credentials=sealed.blob, key_id=sealed.kid, credentials_fingerprint=sealed.fingerprint
                )
            updated = (
                await conn.execute(
                    user_connection.update()
                    .where(*_owned_by(user_id, connection_id))
                    .values(**changes, **bumped(user_connection))
                    .returning(*CONNECTION_COLUMNS)
                )
            ).one()
            return connection_of(updated)

    async def delete(self, user_id: str, connection_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            version = await locked_version(conn, user_connection.c.version, *_owned_by(user_id, connection_id))
            if version is None:
                raise not_found("connection")
            check_etag(etag, version, "connection")
            await conn.execute(user_connection.delete().where(*_owned_by(user_id, connection_id)))

    async def mark_verified(self, connection_id: str, owner: str | None) -> ConnectionRecord:
        """Sets last_verified_at. `owner` is the calling user; None for a scoped service token."""
        where = [user_connection.c.id == connection_id]
        if owner is not None:
            where.append(user_connection.c.user_id == owner)
        async with self._db.transaction() as conn:
            status = (
                await conn.execute(sa.select(user_connection.c.status).where(*where).with_for_update())
            ).scalar_one_or_none()
            if status is None:
                raise not_found("connection")
            if status == "revoked":
                raise FailedPrecondition("the connection is revoked", reason="CONNECTION_REVOKED")
            row = (
                await conn.execute(
                    user_connection.update()
                    .where(*where)
                    .values(last_verified_at=now(), **bumped(user_connection))
                    .returning(*CONNECTION_COLUMNS)
                )
            ).one()
            return connection_of(row)

    async def reveal(
        self,
        connection_id: str,
        *,
        actor: str,
        token_id: str,
        purpose: str,
        check: Callable[[ConnectionRecord], None],
        open_: Callable[[StoredCredentials], dict[str, JSON]],
    ) -> tuple[ConnectionRecord, dict[str, JSON]]:
        """Decrypts a connection's credentials and records the reveal in the same transaction,
        so nothing is revealed without its audit row."""
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        *CONNECTION_COLUMNS, user_connection.c.key_id, user_connection.c.encrypted_credentials
                    ).where(user_connection.c.id == connection_id)
                )
            ).one_or_none()
            if row is None:
                raise not_found("connection")
            record = connection_of(row)
            check(record)
            credentials = open_(stored_of(row))
            await record_reveal(conn, record, actor=actor, token_id=token_id, purpose=purpose)
            return record, credentials
