"""WatchRevocations through real channels: what it carries (digests only), resuming by cursor, and
how the table stays small (old sign-ins are not published; expired entries are pruned). The
cross-service behaviour is in tests/gateway/test_revocation.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import jwt

from launch.registry import USER
from nexus.kit.config import Settings
from nexus.kit.revocations import COVER_MARGIN_S, RevokedSessions, session_digest
from nexus.kit.server import running
from nexus.user.v1 import user_pb2
from tests.support import rpc_error
from tests.user.conftest import Account, SignUp, db

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub

WITHIN_S = 2.0


def sid(account: Account) -> str:
    return str(jwt.decode(account.tokens.access_token, options={"verify_signature": False})["sid"])


async def read_until(
    stream: AsyncIterator[user_pb2.WatchRevocationsResponse], digest: bytes, within_s: float = WITHIN_S
) -> list[user_pb2.WatchRevocationsResponse]:
    """Messages from the stream up to the one that carries `digest`."""
    seen: list[user_pb2.WatchRevocationsResponse] = []
    deadline = time.monotonic() + within_s
    while not any(r.session_digest == digest for m in seen for r in m.revocations):
        seen.append(await asyncio.wait_for(anext(stream), max(0.0, deadline - time.monotonic())))
    return seen


async def test_access_tokens_name_their_sign_in(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up()
    with db(settings) as conn:
        families = [
            str(r[0]) for r in conn.execute("SELECT id FROM users.refresh_family WHERE user_id = %s", [account.user_id])
        ]
    assert families == [sid(account)]
    rotated = await stub.Refresh(user_pb2.RefreshRequest(refresh_token=account.tokens.refresh_token))
    assert jwt.decode(rotated.access_token, options={"verify_signature": False})["sid"] == sid(account)


async def test_the_stream_needs_no_token_and_carries_only_digests_of_ended_sign_ins(
    stub: UserServiceAsyncStub, sign_up: SignUp
) -> None:
    account = await sign_up()
    await stub.SignOut(user_pb2.SignOutRequest(refresh_token=account.tokens.refresh_token))
    stream = stub.WatchRevocations(user_pb2.WatchRevocationsRequest(after_seq=0))
    seen = await read_until(stream.__aiter__(), session_digest(sid(account)))
    stream.cancel()
    wire = b"".join(m.SerializeToString() for m in seen)
    for secret in (account.user_id, sid(account), account.email, account.tokens.access_token):
        assert secret.encode() not in wire
    (mine,) = [r for m in seen for r in m.revocations if r.session_digest == session_digest(sid(account))]
    # Kept for one access-token lifetime (and a margin), then forgotten.
    lifetime = mine.expire_time.ToSeconds() - time.time()
    assert 0 < lifetime <= Settings().access_token_ttl_s + COVER_MARGIN_S


async def test_a_follower_resumes_after_its_cursor_and_sees_new_revocations_live(
    stub: UserServiceAsyncStub, sign_up: SignUp
) -> None:
    before, during, after = await sign_up(), await sign_up(), await sign_up()
    await stub.SignOut(user_pb2.SignOutRequest(refresh_token=before.tokens.refresh_token))
    first = stub.WatchRevocations(user_pb2.WatchRevocationsRequest())
    seen = await read_until(first.__aiter__(), session_digest(sid(before)))
    cursor = seen[-1].cursor
    # Live: a sign-out committed while the stream is open arrives on it.
    await stub.SignOut(user_pb2.SignOutRequest(refresh_token=during.tokens.refresh_token))
    live = await read_until(first.__aiter__(), session_digest(sid(during)))
    first.cancel()
    await stub.SignOut(user_pb2.SignOutRequest(refresh_token=after.tokens.refresh_token))
    # Resumed from the cursor: everything after it, nothing before it.
    resumed = stub.WatchRevocations(user_pb2.WatchRevocationsRequest(after_seq=cursor))
    again = await read_until(resumed.__aiter__(), session_digest(sid(after)))
    resumed.cancel()
    digests = [r.session_digest for m in again for r in m.revocations]
    assert session_digest(sid(before)) not in digests
    assert session_digest(sid(during)) in digests
    assert all(r.seq > cursor for m in again for r in m.revocations)
    assert [r.seq for m in [*seen, *live] for r in m.revocations] == sorted(
        r.seq for m in [*seen, *live] for r in m.revocations
    )


async def test_a_negative_cursor_is_invalid_not_internal(stub: UserServiceAsyncStub) -> None:
    async def first_message() -> None:
        async for _ in stub.WatchRevocations(user_pb2.WatchRevocationsRequest(after_seq=-1)):
            return

    failure = await rpc_error(first_message())
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and failure.fields == {"after_seq"}


async def test_deactivation_publishes_only_sign_ins_whose_tokens_may_still_be_valid(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up()
    recent = await stub.SignIn(user_pb2.SignInRequest(email=account.email, password=account.password))
    with db(settings) as conn:
        # The first sign-in was last used a day ago: its access tokens have long expired.
        conn.execute(
            "UPDATE users.refresh_family SET last_used_at = now() - interval '1 day' WHERE id = %s", [sid(account)]
        )
    await stub.DeactivateUser(user_pb2.DeactivateUserRequest(user_id="me"), metadata=account.metadata)
    recent_sid = jwt.decode(recent.access_token, options={"verify_signature": False})["sid"]
    with db(settings) as conn:
        published = {
            bytes(r[0])
            for r in conn.execute(
                "SELECT session_digest FROM users.revocation WHERE session_digest = ANY(%s)",
                [[session_digest(sid(account)), session_digest(recent_sid)]],
            )
        }
        revoked = conn.execute(
            "SELECT count(*) FROM users.refresh_family WHERE user_id = %s AND revoked_at IS NOT NULL", [account.user_id]
        ).fetchone()
    assert published == {session_digest(recent_sid)}
    assert revoked == (2,)  # both sign-ins are ended; only one needed announcing


async def test_expired_revocations_are_pruned_from_the_table(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up()
    await stub.SignOut(user_pb2.SignOutRequest(refresh_token=account.tokens.refresh_token))
    digest = session_digest(sid(account))
    with db(settings) as conn:
        conn.execute(
            "UPDATE users.revocation SET expires_at = now() - interval '1 second' WHERE session_digest = %s", [digest]
        )
    # Every user server prunes when it starts (and once a minute while it runs).
    async with running(USER, settings):
        pass
    with db(settings) as conn:
        assert conn.execute("SELECT count(*) FROM users.revocation WHERE session_digest = %s", [digest]).fetchone() == (
            0,
        )


def test_the_local_set_forgets_revocations_once_their_tokens_have_expired() -> None:
    now = [1000.0]
    revoked = RevokedSessions(clock=lambda: now[0])
    revoked.add(b"a" * 32, 1010.0)
    revoked.add(b"b" * 32, 2000.0)
    revoked.prune()
    assert len(revoked) == 2
    now[0] = 1011.0
    revoked.prune()
    assert b"a" * 32 not in revoked and b"b" * 32 in revoked


async def test_a_sign_in_that_races_a_deactivation_gets_no_tokens(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    """The password check takes a while; a deactivation committed meanwhile must not be followed
    by a fresh sign-in (its tokens would be issued after the revocations were published)."""
    account = await sign_up()
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'nexus-user' AND wait_event_type = 'Lock'"
    )
    with db(settings) as watcher, db(settings) as deactivation:
        deactivation.autocommit = False
        # The deactivation holds the account's row while the sign-in runs.
        deactivation.execute("SELECT 1 FROM users.user WHERE id = %s FOR UPDATE", [account.user_id])
        sign_in = asyncio.ensure_future(
            stub.SignIn(user_pb2.SignInRequest(email=account.email, password=account.password))
        )
        deadline = time.monotonic() + 10
        while not sign_in.done() and watcher.execute(waiting).fetchone() == (0,):
            assert time.monotonic() < deadline, "the sign-in neither finished nor waited for the account"
            await asyncio.sleep(0.02)
        deactivation.execute(
            "UPDATE users.user SET is_active = false, deactivated_at = now() WHERE id = %s", [account.user_id]
        )
        deactivation.commit()
    failure = await rpc_error(sign_in)
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_DEACTIVATED")
