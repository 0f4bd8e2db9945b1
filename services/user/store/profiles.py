"""Profiles: a user's nickname, avatar, preferences and principles (one row per user)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from nexus.kit.db import Database, bumped
from nexus.kit.errors import not_found
from nexus.kit.protos import check_etag
from services.user.domain.records import ProfileRecord
from services.user.store.tables import profile_of, user_profile


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str) -> ProfileRecord:
        async with self._db.connection() as conn:
            row = (
                await conn.execute(sa.select(*user_profile.c).where(user_profile.c.user_id == user_id))
            ).one_or_none()
        if row is None:
            raise not_found("profile")
        return profile_of(row)

    async def update(self, user_id: str, etag: str, change: Callable[[ProfileRecord], dict[str, Any]]) -> ProfileRecord:
        """Read-modify-write under a row lock: `change` gets the current profile and returns the
        columns to set (merge patches need the stored value)."""
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(*user_profile.c).where(user_profile.c.user_id == user_id).with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise not_found("profile")
            current = profile_of(row)
            check_etag(etag, current.version, "profile")
            values = change(current)
            updated = (
                await conn.execute(
                    user_profile.update()
                    .where(user_profile.c.user_id == user_id)
                    .values(**values, **bumped(user_profile))
                    .returning(*user_profile.c)
                )
            ).one()
            return profile_of(updated)
