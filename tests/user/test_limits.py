"""Sign-in and sign-up limits on the user service, through real channels from two real client
addresses (127.0.0.1 and ::1 on one server): a flood from one address is turned away before any
hashing, and everyone else still signs in."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
import pytest

from nexus.kit.config import Settings
from nexus.kit.errors import details_of, retry_delay_of
from nexus.kit.ratelimit import CLIENT_ADDRESS_KEY
from nexus.user.v1 import user_pb2, user_pb2_grpc
from tests.loopbacks import DualStack, on_both_loopbacks
from tests.user.conftest import PASSWORD

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub

T = TypeVar("T")
DEFAULTS = Settings()
FLOOD = 800


def own_limits(settings: Settings, **changes: object) -> Settings:
    """The session's settings with the production limits (the harness lifts the per-address
    ones) and nobody trusted as a relay, unless `changes` say otherwise."""
    production: dict[str, object] = {"auth_address_burst": DEFAULTS.auth_address_burst, "trusted_relays": ()}
    return dataclasses.replace(settings, **{**production, **changes})  # type: ignore[arg-type]


@pytest.fixture
async def limited(settings: Settings, user_server: object) -> AsyncIterator[DualStack]:
    async with on_both_loopbacks("user", own_limits(settings)) as servers:
        yield servers


def stubs(servers: DualStack, open_channel: Callable[[str], grpc.aio.Channel]) -> tuple[UserServiceAsyncStub, ...]:
    return (
        user_pb2_grpc.UserServiceStub(open_channel(servers.v4)),
        user_pb2_grpc.UserServiceStub(open_channel(servers.v6)),
    )


def fresh_email() -> str:
    return f"limits-{uuid.uuid4().hex[:12]}@example.com"


async def outcome(call: Awaitable[T]) -> T | grpc.aio.AioRpcError:
    """The reply, or the error the call failed with."""
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        return err


async def test_a_flood_of_wrong_passwords_from_one_address_does_not_lock_out_a_sign_in_from_another(
    limited: DualStack, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    here, flooder = stubs(limited, open_channel)
    email = fresh_email()
    await here.SignUp(user_pb2.SignUpRequest(email=email, password=PASSWORD))

    first_answered = asyncio.Event()

    async def wrong_guess(i: int) -> object:
        # A different account each time: only the per-address limit can stop this flood.
        guess = user_pb2.SignInRequest(email=f"victim-{i}@example.com", password="wrong password 1")
        try:
            return await outcome(flooder.SignIn(guess))
        finally:
            first_answered.set()

    flood = [asyncio.create_task(wrong_guess(i)) for i in range(FLOOD)]
    await first_answered.wait()  # the server is answering the flood now
    tokens = await here.SignIn(user_pb2.SignInRequest(email=email, password=PASSWORD))
    assert tokens.access_token
    results = await asyncio.gather(*flood)

    assert all(isinstance(r, grpc.aio.AioRpcError) for r in results)
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    refused = [e for e in errors if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
    hashed = [e for e in errors if e.code() == grpc.StatusCode.UNAUTHENTICATED]
    assert len(refused) + len(hashed) == FLOOD
    # At most a burst reached the password hash; every other guess was refused before it.
    assert len(hashed) <= DEFAULTS.auth_address_burst + 5
    for err in refused:
        info, _ = details_of(err)
        assert info is not None and (info.reason, info.domain) == ("RATE_LIMITED", "nexus.user.v1")
        assert info.metadata["limit"] == "client_address"
        delay = retry_delay_of(err)
        assert delay is not None and 0 < delay <= 60 / DEFAULTS.auth_address_per_minute


async def test_a_client_address_in_metadata_is_ignored_from_a_peer_that_is_no_trusted_relay(
    limited: DualStack, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    _, flooder = stubs(limited, open_channel)

    async def spoofed(i: int) -> object:
        guess = user_pb2.SignInRequest(email=f"spoof-{i}@example.com", password="wrong password 1")
        return await outcome(flooder.SignIn(guess, metadata=((CLIENT_ADDRESS_KEY, f"203.0.113.{i % 250}"),)))

    results = await asyncio.gather(*(spoofed(i) for i in range(DEFAULTS.auth_address_burst + 10)))
    codes = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 10


async def test_an_unknown_email_and_a_wrong_password_are_limited_alike(
    settings: Settings, user_server: object, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    async with on_both_loopbacks("user", own_limits(settings, auth_account_burst=2)) as servers:
        here, elsewhere = stubs(servers, open_channel)
        known = fresh_email()
        await here.SignUp(user_pb2.SignUpRequest(email=known, password=PASSWORD))
        answers = []
        for email in (known, fresh_email()):
            for stub in (here, elsewhere, here):  # the account limit holds across addresses
                answers.append(await outcome(stub.SignIn(user_pb2.SignInRequest(email=email, password="wrong pw 12"))))
        seen = [(a.code(), a.details(), details_of(a)[0]) for a in answers if isinstance(a, grpc.aio.AioRpcError)]
        assert len(seen) == 6
        assert seen[:3] == seen[3:]
        assert [code for code, _, _ in seen[:3]] == [
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ]
        info = seen[2][2]
        assert info is not None and (info.reason, info.metadata["limit"]) == ("RATE_LIMITED", "account")


async def test_successful_sign_ins_do_not_use_up_the_limit(
    settings: Settings, user_server: object, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    limits = own_limits(settings, auth_account_burst=2, auth_address_burst=2)
    async with on_both_loopbacks("user", limits) as servers:
        here, _ = stubs(servers, open_channel)
        email = fresh_email()
        await here.SignUp(user_pb2.SignUpRequest(email=email, password=PASSWORD))
        for _ in range(5):
            await here.SignIn(user_pb2.SignInRequest(email=email, password=PASSWORD))


async def test_sign_up_is_limited_per_address_so_taken_emails_cannot_be_listed_quickly(
    settings: Settings, user_server: object, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    async with on_both_loopbacks("user", own_limits(settings, auth_address_burst=3)) as servers:
        here, prober = stubs(servers, open_channel)
        taken = fresh_email()
        await here.SignUp(user_pb2.SignUpRequest(email=taken, password=PASSWORD))
        probes = [
            await outcome(prober.SignUp(user_pb2.SignUpRequest(email=taken, password=PASSWORD))) for _ in range(3)
        ]
        assert [p.code() for p in probes if isinstance(p, grpc.aio.AioRpcError)] == [grpc.StatusCode.ALREADY_EXISTS] * 3
        refused = await outcome(prober.SignUp(user_pb2.SignUpRequest(email=fresh_email(), password=PASSWORD)))
        assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay_of(refused) is not None
        # Another address still signs up.
        assert (await here.SignUp(user_pb2.SignUpRequest(email=fresh_email(), password=PASSWORD))).user.id
