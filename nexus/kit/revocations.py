"""Revoked sign-ins, known to every service without a call per request (DESIGN §2).

A user's access token carries its sign-in's session id (`sid`, the refresh-token family). When a
sign-in ends (SignOut, a reused refresh token, DeactivateUser), the user service publishes the
SHA-256 of its session id on the server stream `WatchRevocations`. Every server follows that
stream from start to stop (`RevocationFollower`) into a small in-memory set (`RevokedSessions`)
that its auth interceptor checks on every call: a dict lookup.

- The stream carries digests, not ids: it needs no token (services have no credential of their
  own in every deployment), and a digest of a random 122-bit id tells nothing to anyone who
  does not already hold a token of that sign-in. No user id, email or count per user is on it.
- Each entry says when the last token it covers expires (revocation time + access-token TTL +
  a margin); the set and the user service's table forget it then, so both stay as small as
  the sign-outs of one TTL.
- While the user service is unreachable a follower keeps the set it has, retries with capped
  exponential backoff (logged once per outage, not per retry), and resumes after its cursor,
  which misses nothing: the table loses only entries that no longer matter. Tokens revoked
  during the outage keep working until the follower is back or they expire; refusing every
  token instead would make the user service a single point of failure for every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable

import grpc

from nexus.kit.tokens import Principal

log = logging.getLogger("nexus.revocations")

# Past a revocation, how much longer than one access-token TTL its entry is kept: covers a token
# minted just after its family's row was read, the verifiers' 5 s leeway and modest clock skew.
COVER_MARGIN_S = 60
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


def session_digest(session_id: str) -> bytes:
    """What the stream names a revoked sign-in by: sha256 of its session id."""
    return hashlib.sha256(session_id.encode()).digest()


class RevokedSessions:
    """Digests of revoked sessions and when each may be forgotten (Unix time)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._expires: dict[bytes, float] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._expires)

    def __contains__(self, digest: object) -> bool:
        return digest in self._expires

    def add(self, digest: bytes, expires_at: float) -> None:
        self._expires[digest] = max(expires_at, self._expires.get(digest, 0.0))

    def revoked(self, principal: Principal) -> bool:
        """Whether the token's sign-in was ended. Service tokens have no session: they are
        short-lived by operator choice and not revoked here."""
        return principal.session_id is not None and session_digest(principal.session_id) in self._expires

    def prune(self) -> None:
        now = self._clock()
        for digest in [d for d, expires in self._expires.items() if expires <= now]:
            del self._expires[digest]


class RevocationFollower:
    """Follows the user service's WatchRevocations into `revoked`, from start() to stop()."""

    def __init__(self, channel: Callable[[], grpc.aio.Channel], revoked: RevokedSessions | None = None) -> None:
        self._channel = channel
        self.revoked = revoked if revoked is not None else RevokedSessions()
        # The seq of the last revocation received: a reconnect resumes after it.
        self.cursor = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="revocation-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        from nexus.user.v1 import user_pb2, user_pb2_grpc

        backoff = MIN_BACKOFF_S
        connected: bool | None = None  # None until the first attempt: an outage is logged once
        while True:
            try:
                stub = user_pb2_grpc.UserServiceStub(self._channel())
                async for reply in stub.WatchRevocations(user_pb2.WatchRevocationsRequest(after_seq=self.cursor)):
                    if not connected:
                        log.info("following revocations", extra={"fields": {"after_seq": self.cursor}})
                        connected, backoff = True, MIN_BACKOFF_S
                    for revocation in reply.revocations:
                        self.revoked.add(revocation.session_digest, revocation.expire_time.ToSeconds())
                    self.cursor = max(self.cursor, reply.cursor)
                    self.revoked.prune()
            except grpc.aio.AioRpcError as err:
                if connected is not False:
                    log.warning(
                        "revocations unreachable; keeping the known set and retrying",
                        extra={"fields": {"code": err.code().name, "known": len(self.revoked)}},
                    )
                connected = False
            except Exception:
                # Not the network: still keep the set and retry, but say what broke.
                log.exception("following revocations failed; retrying")
                connected = False
            # Full jitter: the followers of every service do not reconnect in step.
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
