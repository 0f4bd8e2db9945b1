"""Accounts and their sign-ins: users, refresh-token families and the tokens of each.

Ending sign-ins (sign-out, a reused refresh token, deactivation) publishes revocations in the same
transaction (store/revocations.py), and `on_revoked` wakes the feed once it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.config import Settings
from nexus.kit.db import Database
from nexus.kit.errors import AlreadyExists, not_found
from nexus.kit.revocations import COVER_MARGIN_S
from services.user.domain.records import RefreshTokenState, SignInCandidate, UserRecord
from services.user.store.revocations import revoke_sign_ins
from services.user.store.tables import now, refresh_family, refresh_token, user, user_of, user_profile


class AccountStore:
    def __init__(self, db: Database, *, access_token_ttl_s: int = Settings.access_token_ttl_s) -> None:
        self._db = db
        # A revocation is in force while a token issued before it may be unexpired.
        self._revocation_lifetime = timedelta(seconds=access_token_ttl_s + COVER_MARGIN_S)
        # Called after a transaction that published revocations commits (the feed wakes up).
        self.on_revoked: Callable[[], None] = lambda: None

    async def create_user(self, *, email: str, email_key: str, password_hash: str, nickname: str) -> UserRecord:
        """A new account and its empty profile; ALREADY_EXISTS if the email is taken."""
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    pg.insert(user)
                    .values(id=str(uuid.uuid4()), email=email, email_key=email_key, password_hash=password_hash)
                    .on_conflict_do_nothing(index_elements=[user.c.email_key])
                    .returning(*user.c)
                )
            ).one_or_none()
            if row is None:
                raise AlreadyExists("an account with this email already exists", reason="EMAIL_TAKEN")
            await conn.execute(
                user_profile.insert().values(user_id=row.id, nickname=nickname, preferences={}, principles=[])
            )
            return user_of(row)

    async def sign_in_candidate(self, email_key: str) -> SignInCandidate | None:
        async with self._db.connection() as conn:
            row = (
                await conn.execute(
                    sa.select(user.c.id, user.c.password_hash, user.c.is_active).where(user.c.email_key == email_key)
                )
            ).one_or_none()
        return None if row is None else SignInCandidate(row.id, row.password_hash, row.is_active)

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> None:
        """Upgrades a hash made with weaker parameters; a concurrent password change wins."""
        async with self._db.transaction() as conn:
            await conn.execute(
                user.update()
                .where(user.c.id == user_id, user.c.password_hash == old_hash)
                .values(password_hash=new_hash)
            )

    async def get_user(self, user_id: str) -> UserRecord:
        async with self._db.connection() as conn:
            row = (await conn.execute(sa.select(*user.c).where(user.c.id == user_id))).one_or_none()
        if row is None:
            raise not_found("user")
        return user_of(row)

    async def set_active(self, user_id: str, active: bool) -> UserRecord:
        """Deactivation also revokes every sign-in, so reactivation does not revive them."""
        async with self._db.transaction() as conn:
            values: dict[str, Any] = {"is_active": active, "updated_at": now()}
            values["deactivated_at"] = None if active else sa.func.coalesce(user.c.deactivated_at, now())
            row = (
                await conn.execute(user.update().where(user.c.id == user_id).values(**values).returning(*user.c))
            ).one_or_none()
            published = False
            if row is not None and not active:
                published = await self._revoke(conn, refresh_family.c.user_id == user_id, "user_deactivated")
        if published:
            self.on_revoked()
        if row is None:
            raise not_found("user")
        return user_of(row)

    # -- sign-ins: refresh-token families --------------------------------------------------------

    async def start_family(self, user_id: str, token_hash: bytes, ttl_s: int) -> tuple[str, datetime] | None:
        """A new sign-in with its first refresh token; returns the family id and the token's
        expiry, or None when the user is not active (any more)."""
        async with self._db.transaction() as conn:
            # Locked against a concurrent deactivation: either it commits first and this sees
            # it, or it waits and then revokes this family with the others.
            active = (
                await conn.execute(sa.select(user.c.is_active).where(user.c.id == user_id).with_for_update(read=True))
            ).scalar_one_or_none()
            if not active:
                return None
            family_id = str(uuid.uuid4())
            await conn.execute(refresh_family.insert().values(id=family_id, user_id=user_id))
            return family_id, await self._issue(conn, family_id, token_hash, ttl_s)

    @staticmethod
    async def _issue(conn: AsyncConnection, family_id: str, token_hash: bytes, ttl_s: int) -> datetime:
        expires = now() + sa.literal(timedelta(seconds=ttl_s), sa.Interval)
        result = await conn.execute(
            refresh_token.insert()
            .values(token_hash=token_hash, family_id=family_id, expires_at=expires)
            .returning(refresh_token.c.expires_at)
        )
        expires_at: datetime = result.scalar_one()
        return expires_at

    async def refresh(
        self,
        token_hash: bytes,
        decide: Callable[[RefreshTokenState | None], bool],
        next_hash: bytes,
        ttl_s: int,
    ) -> tuple[str, str, datetime] | None:
        """Locks the presented token and asks `decide` what to do. True: use it up and issue
        `next_hash` in its family, returning (user id, family id, expiry). False: revoke the
        family and commit, returning None. `decide` raises to refuse without changing anything."""
        issued = await self._refresh(token_hash, decide, next_hash, ttl_s)
        if issued is None:
            self.on_revoked()
        return issued

    async def _refresh(
        self,
        token_hash: bytes,
        decide: Callable[[RefreshTokenState | None], bool],
        next_hash: bytes,
        ttl_s: int,
    ) -> tuple[str, str, datetime] | None:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        refresh_token.c.family_id,
                        refresh_token.c.used_at,
                        (refresh_token.c.expires_at <= now()).label("expired"),
                        refresh_family.c.user_id,
                        refresh_family.c.revoked_at,
                        user.c.is_active,
                    )
                    .select_from(refresh_token.join(refresh_family).join(user))
                    .where(refresh_token.c.token_hash == token_hash)
                    .with_for_update(of=[refresh_token, refresh_family])
                )
            ).one_or_none()
            state = (
                None
                if row is None
                else RefreshTokenState(
                    family_id=row.family_id,
                    user_id=row.user_id,
                    used=row.used_at is not None,
                    expired=row.expired,
                    family_revoked=row.revoked_at is not None,
                    user_active=row.is_active,
                )
            )
            if not decide(state):
                assert state is not None
                await revoke_sign_ins(
                    conn, self._revocation_lifetime, refresh_family.c.id == state.family_id, "refresh_token_reused"
                )
                return None
            assert state is not None
            await conn.execute(
                refresh_token.update().where(refresh_token.c.token_hash == token_hash).values(used_at=now())
            )
            await conn.execute(
                refresh_family.update().where(refresh_family.c.id == state.family_id).values(last_used_at=now())
            )
            return state.user_id, state.family_id, await self._issue(conn, state.family_id, next_hash, ttl_s)

    async def sign_out(self, token_hash: bytes) -> None:
        """Revokes the family of the token, whether or not the token was already used."""
        async with self._db.transaction() as conn:
            family = sa.select(refresh_token.c.family_id).where(refresh_token.c.token_hash == token_hash)
            published = await self._revoke(conn, refresh_family.c.id.in_(family.scalar_subquery()), "signed_out")
        if published:
            self.on_revoked()

    async def _revoke(self, conn: AsyncConnection, where: sa.ColumnElement[bool], reason: str) -> bool:
        """Ends the sign-ins `where` selects and publishes their revocations (store/revocations.py)."""
        return await revoke_sign_ins(conn, self._revocation_lifetime, where, reason)
