"""Sign-up, sign-in, refresh-token rotation, sign-out and deactivation through real channels."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import grpc
import jwt
import pytest

from nexus.kit.auth import bearer_metadata
from nexus.kit.config import Settings
from nexus.kit.tokens import LocalKeySet, TokenVerifier
from nexus.user.v1 import user_pb2
from services.user.domain import passwords, signins
from tests.support import Tokens, rpc_error
from tests.user.conftest import PASSWORD, Account, SignUp, db

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub


def verifier(settings: Settings) -> TokenVerifier:
    return TokenVerifier(
        LocalKeySet(settings.resolved_signing_keys_dir),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
    )


async def test_sign_up_returns_the_account_and_tokens_that_other_services_accept(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up(email="  Ada.Lovelace@Example.COM ")
    assert account.email == "Ada.Lovelace@example.com"
    principal = await verifier(settings).verify(account.tokens.access_token)
    assert (principal.subject, principal.kind) == (account.user_id, "user")
    header = jwt.get_unverified_header(account.tokens.access_token)
    claims = jwt.decode(account.tokens.access_token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA" and header["kid"]
    assert {"iss", "aud", "sub", "exp", "jti", "scope"} <= claims.keys()
    assert 14 * 60 <= claims["exp"] - claims["iat"] <= 16 * 60
    assert account.tokens.token_type == "Bearer"
    assert account.tokens.refresh_token.startswith("nxr_")
    me = await stub.GetUser(user_pb2.GetUserRequest(), metadata=account.metadata)
    assert (me.id, me.email, me.active) == (account.user_id, account.email, True)
    profile = await stub.GetProfile(user_pb2.GetProfileRequest(user_id="me"), metadata=account.metadata)
    assert profile.nickname == "Ada.Lovelace"


async def test_email_is_unique_without_regard_to_case(sign_up: SignUp) -> None:
    await sign_up(email="Grace@Example.com")
    failure = await rpc_error(sign_up(email="grace@EXAMPLE.com"))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not-an-email", PASSWORD, "email"),
        ("a@b", PASSWORD, "email"),
        ("two@@example.com", PASSWORD, "email"),
        ("sp ace@example.com", PASSWORD, "email"),
        ("x" * 300 + "@example.com", PASSWORD, "email"),
        ("ok@example.com", "short", "password"),
        ("ok@example.com", "x" * 129, "password"),
        ("ok@example.com", "password123", "password"),
        ("ok@example.com", "aaaaaaaaaaaa", "password"),
        ("nobody1234@example.com", "Nobody1234", "password"),
    ],
)
async def test_sign_up_rejects_bad_emails_and_weak_passwords(
    stub: UserServiceAsyncStub, email: str, password: str, field: str
) -> None:
    failure = await rpc_error(stub.SignUp(user_pb2.SignUpRequest(email=email, password=password)))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == {field}
    assert password not in failure.message


async def test_password_is_stored_as_an_argon2id_phc_string_at_owasp_strength(settings: Settings) -> None:
    phc = passwords.hash_password(PASSWORD)
    assert phc.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password(PASSWORD, phc)
    assert not passwords.verify_password(PASSWORD + "!", phc)
    assert not passwords.needs_rehash(phc)
    weaker = passwords.hash_password(PASSWORD, passwords.Argon2Params(memory_kib=8 * 1024, iterations=1))
    assert passwords.needs_rehash(weaker)


async def test_sign_in_with_any_letter_case_of_the_email(
    stub: UserServiceAsyncStub, alice: Account, settings: Settings
) -> None:
    reply = await stub.SignIn(user_pb2.SignInRequest(email=alice.email.upper(), password=alice.password))
    assert reply.user_id == alice.user_id
    assert (await verifier(settings).verify(reply.access_token)).subject == alice.user_id
    assert reply.refresh_token != alice.tokens.refresh_token


async def test_unknown_email_and_wrong_password_get_the_same_answer_after_a_full_hash(
    stub: UserServiceAsyncStub, alice: Account
) -> None:
    started = time.perf_counter()
    passwords.verify_password(PASSWORD, passwords.dummy_hash())
    one_hash = (time.perf_counter() - started) / 2  # the dummy_hash call is a hash too

    async def attempt(email: str) -> tuple[Any, float]:
        started = time.perf_counter()
        failure = await rpc_error(stub.SignIn(user_pb2.SignInRequest(email=email, password="wrong password 1")))
        return failure, time.perf_counter() - started

    wrong, _ = await attempt(alice.email)
    unknown, unknown_s = await attempt("nobody-at-all@example.com")
    assert (wrong.code, wrong.reason, wrong.message) == (unknown.code, unknown.reason, unknown.message)
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    # A lower bound only (a loaded machine makes calls slower, never faster): without the dummy
    # hash, an unknown email would answer in a millisecond or two.
    assert unknown_s >= one_hash * 0.5


async def test_refresh_rotates_the_token_and_a_reused_token_revokes_its_family(
    stub: UserServiceAsyncStub, sign_up: SignUp
) -> None:
    account = await sign_up()
    first = account.tokens.refresh_token
    second = await stub.Refresh(user_pb2.RefreshRequest(refresh_token=first))
    assert second.user_id == account.user_id and second.refresh_token != first
    third = await stub.Refresh(user_pb2.RefreshRequest(refresh_token=second.refresh_token))
    # The first token is presented again: a thief or a replay. Refused, and the family dies.
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=first)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=third.refresh_token)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REVOKED")
    # Other sign-ins of the same user are separate families and keep working.
    other = await stub.SignIn(user_pb2.SignInRequest(email=account.email, password=account.password))
    assert (await stub.Refresh(user_pb2.RefreshRequest(refresh_token=other.refresh_token))).user_id


async def test_refresh_tokens_are_stored_only_as_hashes(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up()
    with db(settings) as conn:
        dump = conn.execute("SELECT string_agg(t::text, ' ') FROM users.refresh_token t").fetchone()
    assert dump is not None and dump[0]
    assert account.tokens.refresh_token not in dump[0]
    assert account.tokens.refresh_token.encode().hex() not in dump[0]


async def test_garbage_refresh_tokens_are_unauthenticated_not_internal(stub: UserServiceAsyncStub) -> None:
    for token in ["nxr_" + "A" * 43, "nope", "nxr_" + "é" * 43]:
        failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=token)))
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token="")))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_sign_out_revokes_the_family(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    rotated = await stub.Refresh(user_pb2.RefreshRequest(refresh_token=account.tokens.refresh_token))
    # Any token of the family ends it, even one already used up.
    await stub.SignOut(user_pb2.SignOutRequest(refresh_token=account.tokens.refresh_token))
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=rotated.refresh_token)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REVOKED")
    await stub.SignOut(user_pb2.SignOutRequest(refresh_token=rotated.refresh_token))  # idempotent


async def test_deactivation_blocks_sign_in_and_refresh(
    stub: UserServiceAsyncStub, sign_up: SignUp, tokens: Tokens
) -> None:
    account = await sign_up()
    spare = await stub.SignIn(user_pb2.SignInRequest(email=account.email, password=account.password))
    user = await stub.DeactivateUser(user_pb2.DeactivateUserRequest(user_id="me"), metadata=account.metadata)
    assert not user.active and user.HasField("deactivate_time")
    failure = await rpc_error(stub.SignIn(user_pb2.SignInRequest(email=account.email, password=account.password)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_DEACTIVATED")
    # A wrong password still gets the ordinary answer: deactivation is no oracle.
    failure = await rpc_error(stub.SignIn(user_pb2.SignInRequest(email=account.email, password="wrong password 1")))
    assert failure.reason == "INVALID_CREDENTIALS"
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=spare.refresh_token)))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    # Only an admin service token reactivates; old sign-ins stay revoked. (The account's own
    # access token is being revoked everywhere by now; a user token of no sign-in stands in.)
    _, own_token = tokens.user(account.user_id)
    failure = await rpc_error(
        stub.ReactivateUser(user_pb2.ReactivateUserRequest(user_id=account.user_id), metadata=own_token)
    )
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    admin = tokens.service("user.admin", name="ops")
    user = await stub.ReactivateUser(user_pb2.ReactivateUserRequest(user_id=account.user_id), metadata=admin)
    assert user.active
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=spare.refresh_token)))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert (await stub.SignIn(user_pb2.SignInRequest(email=account.email, password=account.password))).user_id


async def test_who_may_deactivate(stub: UserServiceAsyncStub, sign_up: SignUp, alice: Account, tokens: Tokens) -> None:
    victim = await sign_up()
    # Another user cannot, and learns nothing: NOT_FOUND.
    failure = await rpc_error(
        stub.DeactivateUser(user_pb2.DeactivateUserRequest(user_id=victim.user_id), metadata=alice.metadata)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    # A service token without the admin scope cannot either.
    worker = tokens.service("runtime.worker")
    failure = await rpc_error(
        stub.DeactivateUser(user_pb2.DeactivateUserRequest(user_id=victim.user_id), metadata=worker)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
    admin = tokens.service("user.admin")
    reply = await stub.DeactivateUser(user_pb2.DeactivateUserRequest(user_id=victim.user_id), metadata=admin)
    assert not reply.active
    fetched = await stub.GetUser(user_pb2.GetUserRequest(user_id=victim.user_id), metadata=admin)
    assert not fetched.active


async def test_methods_other_than_sign_in_need_a_token(stub: UserServiceAsyncStub) -> None:
    failure = await rpc_error(stub.GetUser(user_pb2.GetUserRequest()))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    failure = await rpc_error(stub.GetUser(user_pb2.GetUserRequest(), metadata=bearer_metadata("x.y.z")))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def test_an_expired_refresh_token_is_refused(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up()
    with db(settings) as conn:
        conn.execute(
            "UPDATE users.refresh_token SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
            [signins.token_hash(account.tokens.refresh_token)],
        )
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=account.tokens.refresh_token)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_EXPIRED")


async def test_two_concurrent_refreshes_with_one_token_count_as_reuse(
    stub: UserServiceAsyncStub, sign_up: SignUp
) -> None:
    account = await sign_up()
    request = user_pb2.RefreshRequest(refresh_token=account.tokens.refresh_token)
    results = await asyncio.gather(stub.Refresh(request), stub.Refresh(request), return_exceptions=True)
    winners = [r for r in results if isinstance(r, user_pb2.AuthTokens)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].code() == grpc.StatusCode.UNAUTHENTICATED
    # The row lock serialised them; the second saw a used token and revoked the family.
    failure = await rpc_error(stub.Refresh(user_pb2.RefreshRequest(refresh_token=winners[0].refresh_token)))
    assert failure.reason == "REFRESH_TOKEN_REVOKED"


async def test_sign_in_upgrades_a_hash_made_with_weaker_parameters(
    stub: UserServiceAsyncStub, sign_up: SignUp, settings: Settings
) -> None:
    account = await sign_up()
    weak = passwords.hash_password(account.password, passwords.Argon2Params(memory_kib=8 * 1024, iterations=1))
    with db(settings) as conn:
        conn.execute("UPDATE users.user SET password_hash = %s WHERE id = %s", [weak, account.user_id])
    await stub.SignIn(user_pb2.SignInRequest(email=account.email, password=account.password))
    with db(settings) as conn:
        row = conn.execute("SELECT password_hash FROM users.user WHERE id = %s", [account.user_id]).fetchone()
    assert row is not None and row[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password(account.password, row[0])
