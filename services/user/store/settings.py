"""Settings: one JSON value per user and key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from nexus.kit.db import Database, bumped, locked_version, read_page
from nexus.kit.errors import not_found
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from nexus.kit.validation import JSON
from services.user.domain.records import SettingRecord
from services.user.store.tables import setting_of, settings


@dataclass(frozen=True)
class SettingCursor:
    """A user's settings in key order."""

    key: str


def _key(user_id: str, key: str) -> tuple[sa.ColumnElement[bool], ...]:
    return settings.c.user_id == user_id, settings.c.key == key


class SettingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str, key: str) -> SettingRecord:
        async with self._db.connection() as conn:
            row = (
                await conn.execute(sa.select(*settings.c).where(settings.c.user_id == user_id, settings.c.key == key))
            ).one_or_none()
        if row is None:
            raise not_found("setting")
        return setting_of(row)

    async def page(self, user_id: str, page: Rows[SettingRecord, SettingCursor]) -> None:
        query = sa.select(*settings.c).where(settings.c.user_id == user_id).order_by(settings.c.key)
        if page.after is not None:
            query = query.where(settings.c.key > page.after.key)
        async with self._db.connection() as conn:
            await read_page(conn, query, page, setting_of)

    async def set(self, user_id: str, key: str, value: JSON, etag: str) -> SettingRecord:
        async with self._db.transaction() as conn:
            if etag:
                current = await locked_version(conn, settings.c.version, *_key(user_id, key))
                check_etag(etag, current, "setting")
            insert = pg.insert(settings).values(id=str(uuid.uuid4()), user_id=user_id, key=key, value=value)
            row = (
                await conn.execute(
                    insert.on_conflict_do_update(
                        constraint="settings_user_id_key_key",
                        set_={"value": insert.excluded.value, **bumped(settings)},
                    ).returning(*settings.c)
                )
            ).one()
            return setting_of(row)

    async def delete(self, user_id: str, key: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            version = await locked_version(conn, settings.c.version, *_key(user_id, key))
            if version is None:
                raise not_found("setting")
            check_etag(etag, version, "setting")
            await conn.execute(settings.delete().where(*_key(user_id, key)))
