"""Revocations: ended sign-ins whose access tokens may still be unexpired, as WatchRevocations
publishes them (services/user/README.md, "Revocation")."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database
from nexus.kit.revocations import session_digest
from services.user.domain.records import RevocationRecord
from services.user.store.tables import SCHEMA, now, refresh_family, revocation


async def revoke_sign_ins(
    conn: AsyncConnection, lifetime: timedelta, where: sa.ColumnElement[bool], reason: str
) -> bool:
    """Revokes the families not yet revoked, and publishes those whose access tokens may
    still be unexpired (a family's newest token was issued when it was last used). Returns
    whether anything was published."""
    recent = refresh_family.c.last_used_at > now() - sa.literal(lifetime, sa.Interval)
    rows = (
        await conn.execute(
            refresh_family.update()
            .where(where, refresh_family.c.revoked_at.is_(None))
            .values(revoked_at=now(), revoked_reason=reason)
            .returning(refresh_family.c.id, recent.label("recent"))
        )
    ).all()
    families = [row.id for row in rows if row.recent]
    if not families:
        return False
    # Revocations are rare; serialising their inserts makes seq order commit order, so a
    # follower's cursor never passes a row that commits later with a smaller seq. Whoever
    # holds this lock waits for nothing else: it cannot deadlock with the row locks above.
    await conn.execute(sa.text(f"LOCK TABLE {SCHEMA}.revocation IN SHARE ROW EXCLUSIVE MODE"))
    expires = now() + sa.literal(lifetime, sa.Interval)
    await conn.execute(
        revocation.insert().values(
            [{"session_digest": session_digest(family), "expires_at": expires} for family in families]
        )
    )
    return True


class RevocationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def after(self, after_seq: int, limit: int) -> list[RevocationRecord]:
        """Revocations still in force with a seq above `after_seq`, in seq order."""
        async with self._db.connection() as conn:
            rows = (
                await conn.execute(
                    sa.select(revocation.c.seq, revocation.c.session_digest, revocation.c.expires_at)
                    .where(revocation.c.seq > after_seq, revocation.c.expires_at > now())
                    .order_by(revocation.c.seq)
                    .limit(limit)
                )
            ).all()
        return [RevocationRecord(r.seq, bytes(r.session_digest), r.expires_at) for r in rows]

    async def last_seq(self) -> int:
        async with self._db.connection() as conn:
            last = (await conn.execute(sa.select(sa.func.max(revocation.c.seq)))).scalar_one_or_none()
        return int(last or 0)

    async def prune(self) -> int:
        """Forgets revocations whose tokens have all expired; returns how many."""
        async with self._db.transaction() as conn:
            result = await conn.execute(revocation.delete().where(revocation.c.expires_at <= now()))
        return int(result.rowcount)
