"""Idempotent creates (AIP-155): a create's `request_id`, remembered per caller and method.

Every service that owns a schema keeps a `request_log` table in it (`table(metadata)`; each
service's own migration creates it). A Create that carries a request_id claims its key (caller,
method, request_id) in the transaction that creates the resource, with a digest of the whole
request and the id of the resource it is about to create:

- the first request inserts the key and creates; if its transaction rolls back, so does the claim;
- a repeat of the same request (same digest) gets the id of what the first one created, and the
  service answers with that resource as it is now;
- the same request_id with a different request is INVALID_ARGUMENT, reason REQUEST_ID_REUSED;
- a twin racing the first waits on the key until the first commits or rolls back, then is a
  repeat or the first.

A key is remembered for `Settings.request_id_ttl_s` (a day by default): past that, the request_id
may be used again, and `RequestLog.prune` (run every minute by `pruner`, or as often as entries
expire when they live less) deletes the entry.
Requests that carry a secret (connection credentials) are digested with HMAC under the service's
keys, so the table holds nothing a guess could be checked against.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database
from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.periodic import Periodic
from nexus.kit.validation import Violations

# Entries deleted per pruning transaction, and how often a replica prunes at most (entries that
# live less than this are pruned as often as they expire).
PRUNE_BATCH = 1000
PRUNE_INTERVAL_S = 60.0

_TS = sa.TIMESTAMP(timezone=True)


def table(metadata: sa.MetaData) -> sa.Table:
    """The request log of the schema `metadata` belongs to."""
    return sa.Table(
        "request_log",
        metadata,
        # The caller's token subject: a user id, or `service:<name>`.
        sa.Column("principal", sa.Text, primary_key=True),
        sa.Column("method", sa.Text, primary_key=True),
        sa.Column("request_id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", _TS, nullable=False),
    )


@dataclass(frozen=True)
class RequestKey:
    """A create request's request_id, scoped to its caller and method, with its digest. `digests`
    are every digest the same request has: one, or one per key of a key ring, so a request
    digested under an older key is still recognised after a newer one is added. `field` is where
    the request holds its request_id, which a refusal names."""

    principal: str
    method: str
    request_id: str
    digest: str
    digests: frozenset[str]
    field: str = "request_id"


def digest(request: Message, *, keys: Sequence[bytes] = ()) -> tuple[str, frozenset[str]]:
    """The digest of a request (SHA-256 of its deterministic encoding; HMAC-SHA-256 under the
    newest of `keys` when it carries a secret), and the digests under every key."""
    body = request.SerializeToString(deterministic=True)
    if not keys:
        plain = hashlib.sha256(body).hexdigest()
        return plain, frozenset([plain])
    under = [hmac.new(key, body, hashlib.sha256).hexdigest() for key in keys]
    return under[-1], frozenset(under)


def key(
    v: Violations,
    request: Message,
    request_id: str,
    *,
    principal: str,
    method: str,
    field: str = "request_id",
    keys: Sequence[bytes] = (),
) -> RequestKey | None:
    """The key of a create request, or None without a request_id; a malformed one is a violation
    of `field`."""
    checked = v.uuid(field, request_id, required=False)
    if checked is None:
        return None
    newest, every = digest(request, keys=keys)
    return RequestKey(principal=principal, method=method, request_id=checked, digest=newest, digests=every, field=field)


def reused(field: str = "request_id") -> InvalidArgument:
    return InvalidArgument(
        f"{field} was already used for a different request",
        reason="REQUEST_ID_REUSED",
        violations=[FieldViolation(field, "was already used for a different request")],
    )


def _resource_of(first: sa.Row[str, str], key: RequestKey) -> str:
    """The resource of the first request with `key`: a repeat's, else REQUEST_ID_REUSED."""
    if first.request_hash not in key.digests:
        raise reused(key.field)
    return str(first.resource_id)


class RequestLog:
    """The claims of one schema's request log, on that service's database."""

    def __init__(self, db: Database, log: sa.Table, *, ttl_s: float) -> None:
        self._db = db
        self._t = log
        self._ttl = timedelta(seconds=ttl_s)
        self._prune_every_s = min(PRUNE_INTERVAL_S, ttl_s)

    def _key(self, key: RequestKey) -> sa.ColumnElement[bool]:
        t = self._t
        return sa.and_(t.c.principal == key.principal, t.c.method == key.method, t.c.request_id == key.request_id)

    async def claim(self, conn: AsyncConnection, key: RequestKey | None, resource_id: str) -> str | None:
        """In the create's transaction, before it writes: None when this request comes first (go
        on and create `resource_id`); else the id of the resource the first request created.
        An entry past its lifetime is taken over as if it were not there."""
        if key is None:
            return None
        t = self._t
        insert = postgresql.insert(t).values(
            principal=key.principal,
            method=key.method,
            request_id=key.request_id,
            request_hash=key.digest,
            resource_id=resource_id,
            expires_at=sa.func.now() + sa.literal(self._ttl, sa.Interval),
        )
        claimed = await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[t.c.principal, t.c.method, t.c.request_id],
                set_={
                    "request_hash": insert.excluded.request_hash,
                    "resource_id": insert.excluded.resource_id,
                    "created_at": sa.func.now(),
                    "expires_at": insert.excluded.expires_at,
                },
                where=t.c.expires_at <= sa.func.now(),
            ).returning(t.c.resource_id)
        )
        if claimed.first() is not None:
            return None
        first = (await conn.execute(sa.select(t.c.request_hash, t.c.resource_id).where(self._key(key)))).one()
        return _resource_of(first, key)

    async def recorded(self, conn: AsyncConnection, key: RequestKey | None) -> str | None:
        """A look before a create that cannot claim yet (an upload, before its bytes arrive): the
        id of what the first request with this key created, while the key is remembered; None
        when there is none (the create then claims the key in its own transaction)."""
        if key is None:
            return None
        t = self._t
        first = (
            await conn.execute(
                sa.select(t.c.request_hash, t.c.resource_id).where(self._key(key), t.c.expires_at > sa.func.now())
            )
        ).first()
        return None if first is None else _resource_of(first, key)

    async def prune(self) -> bool:
        """Deletes up to PRUNE_BATCH entries past their lifetime; True when it found a whole batch
        (more may be waiting). Replicas pruning at once skip each other's rows."""
        t = self._t
        doomed = (
            sa.select(t.c.principal, t.c.method, t.c.request_id)
            .where(t.c.expires_at <= sa.func.now())
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
        )
        async with self._db.transaction() as conn:
            deleted = await conn.execute(
                t.delete().where(sa.tuple_(t.c.principal, t.c.method, t.c.request_id).in_(doomed))
            )
        return int(deleted.rowcount) == PRUNE_BATCH

    def pruner(self) -> Periodic:
        """The background round that keeps the log to the keys still remembered; start it with
        the server (`on_start`) and stop it with it (`on_stop`)."""
        return Periodic("request-log-pruning", self._prune_every_s, self.prune)
