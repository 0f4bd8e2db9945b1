"""Re-encryption of every connection's credentials under the newest key (`nexus keys rotate`)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from nexus.kit.db import Database
from nexus.kit.errors import NexusError
from services.user.domain.envelope import Sealed
from services.user.domain.records import StoredCredentials
from services.user.store.tables import STORED_COLUMNS, stored_of, user_connection


class RotationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def reseal_batch(
        self,
        newest_kid: str,
        after_id: str | None,
        limit: int,
        reseal: Callable[[StoredCredentials], Sealed],
    ) -> tuple[int, str | None, list[str]]:
        """Re-encrypts up to `limit` rows not on the newest key, in id order after `after_id`.
        Rows locked by a running request are skipped (SKIP LOCKED) and picked up by a later
        pass. Returns (rows moved, last id seen, ids that failed)."""
        async with self._db.transaction() as conn:
            query = sa.select(*STORED_COLUMNS).where(user_connection.c.key_id != newest_kid)
            if after_id is not None:
                query = query.where(user_connection.c.id > after_id)
            rows = (
                await conn.execute(query.order_by(user_connection.c.id).limit(limit).with_for_update(skip_locked=True))
            ).all()
            moved, failed = 0, []
            for row in rows:
                try:
                    sealed = reseal(stored_of(row))
                except NexusError:
                    # Unreadable or under a key that is gone: reported, and the batch goes on.
                    failed.append(row.id)
                    continue
                await conn.execute(
                    user_connection.update()
                    .where(user_connection.c.id == row.id)
                    .values(
                        encrypted_credentials=sealed.blob,
                        key_id=sealed.kid,
                        credentials_fingerprint=sealed.fingerprint,
                    )
                )
                moved += 1
            return moved, (rows[-1].id if rows else None), failed

    async def count_by_key(self) -> dict[str, int]:
        async with self._db.connection() as conn:
            rows = (
                await conn.execute(
                    sa.select(user_connection.c.key_id, sa.func.count()).group_by(user_connection.c.key_id)
                )
            ).all()
        return {row[0]: int(row[1]) for row in rows}
