"""Accounts through the gateway: the user service's answers pass through unchanged; GetMe
composes the caller's account, profile and settings."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING

import grpc

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.auth import bearer_metadata
from nexus.kit.validation import JSON, json_to_value
from nexus.user.v1 import user_pb2, user_pb2_grpc
from tests.gateway.conftest import PASSWORD, Account, Platform, SignUp, unique
from tests.support import rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub


async def test_sign_up_sign_in_refresh_and_sign_out_work_through_the_gateway(gw: Stub, sign_up: SignUp) -> None:
    account = await sign_up()
    assert account.tokens.access_token and account.tokens.refresh_token
    tokens = await gw.SignIn(pb.SignInRequest(email=account.email.upper(), password=PASSWORD))
    assert tokens.user_id == account.user_id
    me = await gw.GetMe(pb.GetMeRequest(), metadata=bearer_metadata(tokens.access_token))
    assert me.user.id == account.user_id

    rotated = await gw.Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token))
    assert rotated.refresh_token != tokens.refresh_token
    # The user service's reuse detection holds through the gateway: the used token is refused…
    reused = await rpc_error(gw.Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token)))
    assert (reused.code, reused.domain) == (grpc.StatusCode.UNAUTHENTICATED, "nexus.user.v1")
    # …and its whole family is revoked.
    assert (await rpc_error(gw.Refresh(pb.RefreshRequest(refresh_token=rotated.refresh_token)))).code == (
        grpc.StatusCode.UNAUTHENTICATED
    )

    other = await gw.SignIn(pb.SignInRequest(email=account.email, password=PASSWORD))
    await gw.SignOut(pb.SignOutRequest(refresh_token=other.refresh_token))
    after = await rpc_error(gw.Refresh(pb.RefreshRequest(refresh_token=other.refresh_token)))
    assert after.code == grpc.StatusCode.UNAUTHENTICATED


async def test_account_errors_pass_through_unchanged(gw: Stub, alice: Account) -> None:
    wrong = await rpc_error(gw.SignIn(pb.SignInRequest(email=alice.email, password="not the password")))
    unknown = await rpc_error(gw.SignIn(pb.SignInRequest(email=f"{unique('nobody')}@example.com", password="x" * 12)))
    assert (wrong.code, wrong.domain, wrong.message) == (unknown.code, unknown.domain, unknown.message)
    assert (wrong.code, wrong.domain) == (grpc.StatusCode.UNAUTHENTICATED, "nexus.user.v1")

    weak = await rpc_error(gw.SignUp(pb.SignUpRequest(email="not-an-email", password="short")))
    assert (weak.code, weak.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "nexus.user.v1")
    assert weak.fields == {"email", "password"}
    taken = await rpc_error(gw.SignUp(pb.SignUpRequest(email=alice.email, password=PASSWORD)))
    assert (taken.code, taken.domain) == (grpc.StatusCode.ALREADY_EXISTS, "nexus.user.v1")


async def test_every_other_method_needs_a_valid_token(gw: Stub) -> None:
    missing = await rpc_error(gw.GetMe(pb.GetMeRequest()))
    assert (missing.code, missing.reason, missing.domain) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_MISSING",
        "nexus.gateway.v1",
    )
    forged = await rpc_error(gw.GetMe(pb.GetMeRequest(), metadata=bearer_metadata("e30.e30.c2ln")))
    assert forged.code == grpc.StatusCode.UNAUTHENTICATED
    stream = await rpc_error(_drain(gw.StreamTask(pb.StreamTaskRequest(task_id=unique("x")))))
    assert stream.code == grpc.StatusCode.UNAUTHENTICATED


async def _drain(call: AsyncIterable[object]) -> None:
    async for _ in call:
        pass


async def test_get_me_returns_the_account_profile_and_settings_in_one_call(
    gw: Stub, sign_up: SignUp, platform: Platform, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    account = await sign_up()
    users = user_pb2_grpc.UserServiceStub(open_channel(platform.user.address))
    values: list[tuple[str, JSON]] = [("theme", "dark"), ("beta.features", ["canvas"])]
    for key, value in values:
        setting = user_pb2.Setting(key=key, value=json_to_value(value))
        await users.SetSetting(user_pb2.SetSettingRequest(setting=setting), metadata=account.md)
    await users.UpdateProfile(
        user_pb2.UpdateProfileRequest(profile=user_pb2.Profile(nickname="Ada", principles=["be brief"])),
        metadata=account.md,
    )
    me = await gw.GetMe(pb.GetMeRequest(), metadata=account.md)
    assert (me.user.id, me.user.email) == (account.user_id, account.email)
    assert (me.profile.user_id, me.profile.nickname, list(me.profile.principles)) == (
        account.user_id,
        "Ada",
        ["be brief"],
    )
    assert [(s.key, s.user_id) for s in me.settings] == [
        ("beta.features", account.user_id),
        ("theme", account.user_id),
    ]
