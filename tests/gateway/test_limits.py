"""Sign-in limits across the gateway hop, from two real client addresses (127.0.0.1 and ::1 on
one gateway): the gateway turns a flood from one client away at the edge, and it tells the user
service which client each attempt is for, so its own traffic is not one address."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc

from launch.registry import USER
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.gateway.v1 import gateway_pb2_grpc as pb_grpc
from nexus.kit.config import Settings
from nexus.kit.errors import details_of, retry_delay_of
from nexus.kit.server import running
from tests.gateway.conftest import PASSWORD, Platform, unique
from tests.loopbacks import on_both_loopbacks

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub

T = TypeVar("T")
DEFAULTS = Settings()
FLOOD = 800


async def outcome(call: Awaitable[T]) -> T | grpc.aio.AioRpcError:
    """The reply, or the error the call failed with."""
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        return err


async def flood_while_signing_in(flooder: Stub, here: Stub, email: str) -> list[grpc.aio.AioRpcError]:
    """FLOOD wrong guesses (each for another account) from `flooder`; once the first is answered,
    the real user signs in from `here`, which must succeed. Returns the flood's errors."""
    first_answered = asyncio.Event()

    async def wrong_guess(i: int) -> object:
        guess = pb.SignInRequest(email=f"{unique('victim')}-{i}@example.com", password="wrong password 1")
        try:
            return await outcome(flooder.SignIn(guess))
        finally:
            first_answered.set()

    flood = [asyncio.create_task(wrong_guess(i)) for i in range(FLOOD)]
    await first_answered.wait()
    tokens = await here.SignIn(pb.SignInRequest(email=email, password=PASSWORD))
    assert tokens.access_token
    results = await asyncio.gather(*flood)
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(errors) == FLOOD
    return errors


def refusals(errors: list[grpc.aio.AioRpcError], domain: str) -> int:
    """How many were refused by the rate limit of `domain`; every refusal carries RetryInfo."""
    refused = [e for e in errors if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
    for err in refused:
        info, _ = details_of(err)
        assert info is not None and (info.reason, info.domain) == ("RATE_LIMITED", domain)
        assert info.metadata["limit"] == "client_address"
        assert (retry_delay_of(err) or 0) > 0
    others = {e.code() for e in errors} - {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAUTHENTICATED}
    assert not others
    return len(refused)


async def test_the_gateway_turns_a_flood_from_one_client_away_and_another_client_signs_in(
    platform: Platform, settings: Settings, open_channel: Callable[[str], grpc.aio.Channel], gw: Stub
) -> None:
    email = f"{unique('flood')}@example.com"
    await gw.SignUp(pb.SignUpRequest(email=email, password=PASSWORD))
    edge = dataclasses.replace(settings, auth_address_burst=DEFAULTS.auth_address_burst)
    async with on_both_loopbacks("gateway", edge) as gateway:
        here = pb_grpc.GatewayServiceStub(open_channel(gateway.v4))
        flooder = pb_grpc.GatewayServiceStub(open_channel(gateway.v6))
        errors = await flood_while_signing_in(flooder, here, email)
    assert refusals(errors, "nexus.gateway.v1") >= FLOOD - DEFAULTS.auth_address_burst - 5


async def test_the_user_service_limits_the_client_the_gateway_names_not_the_gateway(
    platform: Platform, settings: Settings, open_channel: Callable[[str], grpc.aio.Channel], gw: Stub
) -> None:
    email = f"{unique('relay')}@example.com"
    await gw.SignUp(pb.SignUpRequest(email=email, password=PASSWORD))
    # A user service with the production per-address limit, trusting loopback (the default) as
    # the relay; in front of it a gateway that does not limit, so only the user service can.
    strict = dataclasses.replace(settings, auth_address_burst=DEFAULTS.auth_address_burst)
    async with running(USER, strict) as user:
        relay = dataclasses.replace(settings, addresses={**settings.addresses, "user": user.address})
        async with on_both_loopbacks("gateway", relay) as gateway:
            here = pb_grpc.GatewayServiceStub(open_channel(gateway.v4))
            flooder = pb_grpc.GatewayServiceStub(open_channel(gateway.v6))
            errors = await flood_while_signing_in(flooder, here, email)
    assert refusals(errors, "nexus.user.v1") >= FLOOD - DEFAULTS.auth_address_burst - 5
