"""Every SQL statement of the User service (schema `users`), on SQLAlchemy Core.

Each public method is one transaction. Every method over a user's data takes that user's id
as a parameter and filters by it; the servicer passes the id from the verified token.
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
from nexus.kit.errors import Aborted, AlreadyExists, FailedPrecondition, NexusError, NotFound
from nexus.kit.protos import etag
from nexus.kit.revocations import COVER_MARGIN_S, session_digest
from nexus.kit.validation import JSON
from services.user.domain.envelope import RowBinding, Sealed
from services.user.domain.records import (
    ConnectionRecord,
    ProfileRecord,
    RefreshTokenState,
    RevealRecord,
    RevocationRecord,
    SettingRecord,
    SignInCandidate,
    StoredCredentials,
    UserRecord,
)

SCHEMA = "users"
metadata = sa.MetaData(schema=SCHEMA)
TS = sa.TIMESTAMP(timezone=True)
UUID = pg.UUID(as_uuid=False)


def _now() -> sa.ColumnElement[datetime]:
    return sa.func.now()


user = sa.Table(
    "user",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("email_key", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", TS, nullable=False, server_default=_now()),
    sa.Column("updated_at", TS, nullable=False, server_default=_now()),
    sa.Column("deactivated_at", TS),
)

user_profile = sa.Table(
    "user_profile",
    metadata,
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), primary_key=True),
    sa.Column("nickname", sa.Text, nullable=False),
    sa.Column("avatar_url", sa.Text),
    sa.Column("preferences", pg.JSONB, nullable=False),
    sa.Column("principles", pg.JSONB, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False, server_default=_now()),
    sa.Column("updated_at", TS, nullable=False, server_default=_now()),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("value", pg.JSONB(none_as_null=False), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False, server_default=_now()),
    sa.Column("updated_at", TS, nullable=False, server_default=_now()),
    sa.UniqueConstraint("user_id", "key", name="settings_user_id_key_key"),
)

user_connection = sa.Table(
    "user_connection",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("agent_id", sa.Text, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("encrypted_credentials", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("credentials_fingerprint", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    sa.Column("last_verified_at", TS),
    sa.Column("request_id", UUID),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False, server_default=_now()),
    sa.Column("updated_at", TS, nullable=False, server_default=_now()),
)

refresh_family = sa.Table(
    "refresh_family",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("user_id", UUID, sa.ForeignKey(user.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", TS, nullable=False, server_default=_now()),
    sa.Column("last_used_at", TS, nullable=False, server_default=_now()),
    sa.Column("revoked_at", TS),
    sa.Column("revoked_reason", sa.Text),
)

refresh_token = sa.Table(
    "refresh_token",
    metadata,
    sa.Column("token_hash", sa.LargeBinary, primary_key=True),
    sa.Column("family_id", UUID, sa.ForeignKey(refresh_family.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("issued_at", TS, nullable=False, server_default=_now()),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("used_at", TS),
)

revocation = sa.Table(
    "revocation",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("session_digest", sa.LargeBinary, nullable=False),
    sa.Column("revoked_at", TS, nullable=False, server_default=_now()),
    sa.Column("expires_at", TS, nullable=False),
)

credential_reveal = sa.Table(
    "credential_reveal",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    # No foreign keys: the audit log outlives the connection it records.
    sa.Column("connection_id", UUID, nullable=False),
    sa.Column("user_id", UUID, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("token_id", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("revealed_at", TS, nullable=False, server_default=_now()),
)

_PROFILE_COLUMNS = [c for c in user_profile.c]
_CONNECTION_COLUMNS = [c for c in user_connection.c if c.name not in ("encrypted_credentials", "key_id", "request_id")]
_STORED_COLUMNS = [
    user_connection.c.id,
    user_connection.c.user_id,
    user_connection.c.provider,
    user_connection.c.key_id,
    user_connection.c.encrypted_credentials,
]


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deactivated_at=row.deactivated_at,
    )


def _profile(row: Any) -> ProfileRecord:
    return ProfileRecord(
        user_id=row.user_id,
        nickname=row.nickname,
        avatar_url=row.avatar_url,
        preferences=row.preferences,
        principles=row.principles,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _setting(row: Any) -> SettingRecord:
    return SettingRecord(
        id=row.id,
        user_id=row.user_id,
        key=row.key,
        value=row.value,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _connection(row: Any) -> ConnectionRecord:
    return ConnectionRecord(
        id=row.id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        provider=row.provider,
        display_name=row.display_name,
        status=row.status,
        credentials_fingerprint=row.credentials_fingerprint,
        last_verified_at=row.last_verified_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _stored(row: Any) -> StoredCredentials:
    return StoredCredentials(
        connection_id=row.id,
        user_id=row.user_id,
        provider=row.provider,
        key_id=row.key_id,
        blob=bytes(row.encrypted_credentials),
    )


def _reveal(row: Any) -> RevealRecord:
    return RevealRecord(
        id=row.id,
        connection_id=row.connection_id,
        user_id=row.user_id,
        actor=row.actor,
        token_id=row.token_id,
        purpose=row.purpose,
        revealed_at=row.revealed_at,
    )


def _check_etag(expected: str, version: int, kind: str) -> None:
    if expected and expected != etag(version):
        raise Aborted(
            f"the {kind} changed since it was read; read it again and retry",
            reason="ETAG_MISMATCH",
        )


def _connection_not_found() -> NotFound:
    return NotFound("connection not found", reason="CONNECTION_NOT_FOUND")


# Seals credentials for a row: given the binding, returns the ciphertext under the newest key.
Sealer = Callable[[RowBinding], Sealed]


class UserStore:
    def __init__(self, db: Database, *, access_token_ttl_s: int = Settings.access_token_ttl_s) -> None:
        self.db = db
        # A revocation is in force while a token issued before it may be unexpired.
        self._revocation_lifetime = timedelta(seconds=access_token_ttl_s + COVER_MARGIN_S)
        # Called after a transaction that published revocations commits (the feed wakes up).
        self.on_revoked: Callable[[], None] = lambda: None

    # -- accounts ------------------------------------------------------------------------------

    async def create_user(self, *, email: str, email_key: str, password_hash: str, nickname: str) -> UserRecord:
        """A new account and its empty profile; ALREADY_EXISTS if the email is taken."""
        async with self.db.transaction() as conn:
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
            return _user(row)

    async def sign_in_candidate(self, email_key: str) -> SignInCandidate | None:
        async with self.db.connection() as conn:
            row = (
                await conn.execute(
                    sa.select(user.c.id, user.c.password_hash, user.c.is_active).where(user.c.email_key == email_key)
                )
            ).one_or_none()
        return None if row is None else SignInCandidate(row.id, row.password_hash, row.is_active)

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> None:
        """Upgrades a hash made with weaker parameters; a concurrent password change wins."""
        async with self.db.transaction() as conn:
            await conn.execute(
                user.update()
                .where(user.c.id == user_id, user.c.password_hash == old_hash)
                .values(password_hash=new_hash)
            )

    async def get_user(self, user_id: str) -> UserRecord | None:
        async with self.db.connection() as conn:
            row = (await conn.execute(sa.select(*user.c).where(user.c.id == user_id))).one_or_none()
        return None if row is None else _user(row)

    async def set_active(self, user_id: str, active: bool) -> UserRecord | None:
        """Deactivation also revokes every sign-in, so reactivation does not revive them."""
        async with self.db.transaction() as conn:
            values: dict[str, Any] = {"is_active": active, "updated_at": _now()}
            values["deactivated_at"] = None if active else sa.func.coalesce(user.c.deactivated_at, _now())
            row = (
                await conn.execute(user.update().where(user.c.id == user_id).values(**values).returning(*user.c))
            ).one_or_none()
            published = False
            if row is not None and not active:
                published = await self._revoke_families(conn, refresh_family.c.user_id == user_id, "user_deactivated")
        if published:
            self.on_revoked()
        return None if row is None else _user(row)

    # -- refresh tokens ------------------------------------------------------------------------

    async def start_family(self, user_id: str, token_hash: bytes, ttl_s: int) -> tuple[str, datetime] | None:
        """A new sign-in with its first refresh token; returns the family id and the token's
        expiry, or None when the user is not active (any more)."""
        async with self.db.transaction() as conn:
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
        expires = _now() + sa.literal(timedelta(seconds=ttl_s), sa.Interval)
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
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        refresh_token.c.family_id,
                        refresh_token.c.used_at,
                        (refresh_token.c.expires_at <= _now()).label("expired"),
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
                await self._revoke_families(conn, refresh_family.c.id == state.family_id, "refresh_token_reused")
                return None
            assert state is not None
            await conn.execute(
                refresh_token.update().where(refresh_token.c.token_hash == token_hash).values(used_at=_now())
            )
            await conn.execute(
                refresh_family.update().where(refresh_family.c.id == state.family_id).values(last_used_at=_now())
            )
            return state.user_id, state.family_id, await self._issue(conn, state.family_id, next_hash, ttl_s)

    async def sign_out(self, token_hash: bytes) -> None:
        """Revokes the family of the token, whether or not the token was already used."""
        async with self.db.transaction() as conn:
            family = sa.select(refresh_token.c.family_id).where(refresh_token.c.token_hash == token_hash)
            published = await self._revoke_families(
                conn, refresh_family.c.id.in_(family.scalar_subquery()), "signed_out"
            )
        if published:
            self.on_revoked()

    async def _revoke_families(self, conn: AsyncConnection, where: sa.ColumnElement[bool], reason: str) -> bool:
        """Revokes the families not yet revoked, and publishes those whose access tokens may
        still be unexpired (a family's newest token was issued when it was last used). Returns
        whether anything was published."""
        recent = refresh_family.c.last_used_at > _now() - sa.literal(self._revocation_lifetime, sa.Interval)
        rows = (
            await conn.execute(
                refresh_family.update()
                .where(where, refresh_family.c.revoked_at.is_(None))
                .values(revoked_at=_now(), revoked_reason=reason)
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
        expires = _now() + sa.literal(self._revocation_lifetime, sa.Interval)
        await conn.execute(
            revocation.insert().values(
                [{"session_digest": session_digest(family), "expires_at": expires} for family in families]
            )
        )
        return True

    # -- revocations ---------------------------------------------------------------------------

    async def revocations_after(self, after_seq: int, limit: int) -> list[RevocationRecord]:
        """Revocations still in force with a seq above `after_seq`, in seq order."""
        async with self.db.connection() as conn:
            rows = (
                await conn.execute(
                    sa.select(revocation.c.seq, revocation.c.session_digest, revocation.c.expires_at)
                    .where(revocation.c.seq > after_seq, revocation.c.expires_at > _now())
                    .order_by(revocation.c.seq)
                    .limit(limit)
                )
            ).all()
        return [RevocationRecord(r.seq, bytes(r.session_digest), r.expires_at) for r in rows]

    async def last_revocation_seq(self) -> int:
        async with self.db.connection() as conn:
            last = (await conn.execute(sa.select(sa.func.max(revocation.c.seq)))).scalar_one_or_none()
        return int(last or 0)

    async def prune_revocations(self) -> int:
        """Forgets revocations whose tokens have all expired; returns how many."""
        async with self.db.transaction() as conn:
            result = await conn.execute(revocation.delete().where(revocation.c.expires_at <= _now()))
        return int(result.rowcount)

    # -- profile -------------------------------------------------------------------------------

    async def get_profile(self, user_id: str) -> ProfileRecord | None:
        async with self.db.connection() as conn:
            row = (
                await conn.execute(sa.select(*_PROFILE_COLUMNS).where(user_profile.c.user_id == user_id))
            ).one_or_none()
        return None if row is None else _profile(row)

    async def update_profile(
        self, user_id: str, etag: str, change: Callable[[ProfileRecord], dict[str, Any]]
    ) -> ProfileRecord | None:
        """Read-modify-write under a row lock: `change` gets the current profile and returns the
        columns to set (merge patches need the stored value)."""
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(*_PROFILE_COLUMNS).where(user_profile.c.user_id == user_id).with_for_update()
                )
            ).one_or_none()
            if row is None:
                return None
            current = _profile(row)
            _check_etag(etag, current.version, "profile")
            values = change(current)
            updated = (
                await conn.execute(
                    user_profile.update()
                    .where(user_profile.c.user_id == user_id)
                    .values(**values, version=user_profile.c.version + 1, updated_at=_now())
                    .returning(*_PROFILE_COLUMNS)
                )
            ).one()
            return _profile(updated)

    # -- settings ------------------------------------------------------------------------------

    async def get_setting(self, user_id: str, key: str) -> SettingRecord | None:
        async with self.db.connection() as conn:
            row = (
                await conn.execute(sa.select(*settings.c).where(settings.c.user_id == user_id, settings.c.key == key))
            ).one_or_none()
        return None if row is None else _setting(row)

    async def list_settings(self, user_id: str, after_key: str | None, limit: int) -> list[SettingRecord]:
        query = sa.select(*settings.c).where(settings.c.user_id == user_id)
        if after_key is not None:
            query = query.where(settings.c.key > after_key)
        async with self.db.connection() as conn:
            rows = (await conn.execute(query.order_by(settings.c.key).limit(limit))).all()
        return [_setting(r) for r in rows]

    async def set_setting(self, user_id: str, key: str, value: JSON, etag: str) -> SettingRecord:
        async with self.db.transaction() as conn:
            if etag:
                current = (
                    await conn.execute(
                        sa.select(settings.c.version)
                        .where(settings.c.user_id == user_id, settings.c.key == key)
                        .with_for_update()
                    )
                ).scalar_one_or_none()
                if current is None:
                    raise Aborted("the setting no longer exists; read it again and retry", reason="ETAG_MISMATCH")
                _check_etag(etag, current, "setting")
            insert = pg.insert(settings).values(id=str(uuid.uuid4()), user_id=user_id, key=key, value=value)
            row = (
                await conn.execute(
                    insert.on_conflict_do_update(
                        constraint="settings_user_id_key_key",
                        set_={"value": insert.excluded.value, "version": settings.c.version + 1, "updated_at": _now()},
                    ).returning(*settings.c)
                )
            ).one()
            return _setting(row)

    async def delete_setting(self, user_id: str, key: str, etag: str) -> bool:
        async with self.db.transaction() as conn:
            version = (
                await conn.execute(
                    sa.select(settings.c.version)
                    .where(settings.c.user_id == user_id, settings.c.key == key)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if version is None:
                return False
            _check_etag(etag, version, "setting")
            await conn.execute(settings.delete().where(settings.c.user_id == user_id, settings.c.key == key))
            return True

    # -- connections ---------------------------------------------------------------------------

    async def create_connection(
        self,
        user_id: str,
        *,
        agent_id: str,
        provider: str,
        display_name: str,
        status: str,
        request_id: str | None,
        seal: Sealer,
    ) -> ConnectionRecord:
        """Inserts a connection; with a request_id already used by this user, returns the
        connection that first request created instead."""
        async with self.db.transaction() as conn:
            if request_id is not None:
                existing = await self._by_request_id(conn, user_id, request_id)
                if existing is not None:
                    return existing
            connection_id = str(uuid.uuid4())
            sealed = seal(RowBinding(connection_id=connection_id, user_id=user_id, provider=provider))
            insert = pg.insert(user_connection).values(
                id=connection_id,
                user_id=user_id,
                agent_id=agent_id,
                provider=provider,
                display_name=display_name,
                status=status,
                encrypted_credentials=sealed.blob,
                key_id=sealed.kid,
                credentials_fingerprint=sealed.fingerprint,
                request_id=request_id,
            )
            row = (
                await conn.execute(
                    insert.on_conflict_do_nothing(
                        index_elements=[user_connection.c.user_id, user_connection.c.request_id],
                        index_where=user_connection.c.request_id.is_not(None),
                    ).returning(*_CONNECTION_COLUMNS)
                )
            ).one_or_none()
            if row is not None:
                return _connection(row)
        # A concurrent request with the same request_id won the insert; answer with its result.
        async with self.db.connection() as conn:
            assert request_id is not None
            existing = await self._by_request_id(conn, user_id, request_id)
        if existing is None:
            raise Aborted("a concurrent request interfered; retry", reason="CONCURRENT_UPDATE")
        return existing

    @staticmethod
    async def _by_request_id(conn: AsyncConnection, user_id: str, request_id: str) -> ConnectionRecord | None:
        row = (
            await conn.execute(
                sa.select(*_CONNECTION_COLUMNS).where(
                    user_connection.c.user_id == user_id, user_connection.c.request_id == request_id
                )
            )
        ).one_or_none()
        return None if row is None else _connection(row)

    async def get_connection(self, user_id: str, connection_id: str) -> ConnectionRecord:
        async with self.db.connection() as conn:
            row = (
                await conn.execute(
                    sa.select(*_CONNECTION_COLUMNS).where(
                        user_connection.c.id == connection_id, user_connection.c.user_id == user_id
                    )
                )
            ).one_or_none()
        if row is None:
            raise _connection_not_found()
        return _connection(row)

    async def list_connections(
        self, user_id: str, agent_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[ConnectionRecord]:
        query = sa.select(*_CONNECTION_COLUMNS).where(user_connection.c.user_id == user_id)
        if agent_id is not None:
            query = query.where(user_connection.c.agent_id == agent_id)
        if after is not None:
            cursor = sa.tuple_(sa.literal(after[0], TS), sa.literal(after[1], UUID))
            query = query.where(sa.tuple_(user_connection.c.created_at, user_connection.c.id) > cursor)
        query = query.order_by(user_connection.c.created_at, user_connection.c.id).limit(limit)
        async with self.db.connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_connection(r) for r in rows]

    async def update_connection(
        self,
        user_id: str,
        connection_id: str,
        *,
        etag: str,
        values: dict[str, Any],
        seal: Sealer | None,
    ) -> ConnectionRecord:
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(user_connection.c.version, user_connection.c.provider)
                    .where(user_connection.c.id == connection_id, user_connection.c.user_id == user_id)
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise _connection_not_found()
            _check_etag(etag, row.version, "connection")
            changes = dict(values)
            if seal is not None:
                sealed = seal(RowBinding(connection_id=connection_id, user_id=user_id, provider=row.provider))
                changes.update(
                    encrypted_credentials=sealed.blob, key_id=sealed.kid, credentials_fingerprint=sealed.fingerprint
                )
            updated = (
                await conn.execute(
                    user_connection.update()
                    .where(user_connection.c.id == connection_id, user_connection.c.user_id == user_id)
                    .values(**changes, version=user_connection.c.version + 1, updated_at=_now())
                    .returning(*_CONNECTION_COLUMNS)
                )
            ).one()
            return _connection(updated)

    async def delete_connection(self, user_id: str, connection_id: str, etag: str) -> None:
        async with self.db.transaction() as conn:
            version = (
                await conn.execute(
                    sa.select(user_connection.c.version)
                    .where(user_connection.c.id == connection_id, user_connection.c.user_id == user_id)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if version is None:
                raise _connection_not_found()
            _check_etag(etag, version, "connection")
            await conn.execute(
                user_connection.delete().where(
                    user_connection.c.id == connection_id, user_connection.c.user_id == user_id
                )
            )

    async def mark_verified(self, connection_id: str, owner: str | None) -> ConnectionRecord:
        """Sets last_verified_at. `owner` is the calling user; None for a scoped service token."""
        where = [user_connection.c.id == connection_id]
        if owner is not None:
            where.append(user_connection.c.user_id == owner)
        async with self.db.transaction() as conn:
            status = (
                await conn.execute(sa.select(user_connection.c.status).where(*where).with_for_update())
            ).scalar_one_or_none()
            if status is None:
                raise _connection_not_found()
            if status == "revoked":
                raise FailedPrecondition("the connection is revoked", reason="CONNECTION_REVOKED")
            row = (
                await conn.execute(
                    user_connection.update()
                    .where(*where)
                    .values(last_verified_at=_now(), updated_at=_now(), version=user_connection.c.version + 1)
                    .returning(*_CONNECTION_COLUMNS)
                )
            ).one()
            return _connection(row)

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
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        *_CONNECTION_COLUMNS, user_connection.c.key_id, user_connection.c.encrypted_credentials
                    ).where(user_connection.c.id == connection_id)
                )
            ).one_or_none()
            if row is None:
                raise _connection_not_found()
            record = _connection(row)
            check(record)
            credentials = open_(_stored(row))
            await conn.execute(
                credential_reveal.insert().values(
                    connection_id=connection_id, user_id=record.user_id, actor=actor, token_id=token_id, purpose=purpose
                )
            )
            return record, credentials

    async def list_reveals(
        self, *, user_id: str | None, connection_id: str | None, before_id: int | None, limit: int
    ) -> list[RevealRecord]:
        query = sa.select(*credential_reveal.c)
        if user_id is not None:
            query = query.where(credential_reveal.c.user_id == user_id)
        if connection_id is not None:
            query = query.where(credential_reveal.c.connection_id == connection_id)
        if before_id is not None:
            query = query.where(credential_reveal.c.id < before_id)
        async with self.db.connection() as conn:
            rows = (await conn.execute(query.order_by(credential_reveal.c.id.desc()).limit(limit))).all()
        return [_reveal(r) for r in rows]

    # -- key rotation --------------------------------------------------------------------------

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
        async with self.db.transaction() as conn:
            query = sa.select(*_STORED_COLUMNS).where(user_connection.c.key_id != newest_kid)
            if after_id is not None:
                query = query.where(user_connection.c.id > after_id)
            rows = (
                await conn.execute(query.order_by(user_connection.c.id).limit(limit).with_for_update(skip_locked=True))
            ).all()
            moved, failed = 0, []
            for row in rows:
                try:
                    sealed = reseal(_stored(row))
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
        async with self.db.connection() as conn:
            rows = (
                await conn.execute(
                    sa.select(user_connection.c.key_id, sa.func.count()).group_by(user_connection.c.key_id)
                )
            ).all()
        return {row[0]: int(row[1]) for row in rows}
