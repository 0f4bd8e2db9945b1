"""Object-level authorization: user B gets NOT_FOUND for everything of user A, lists never leak."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.kit.validation import dict_to_struct, json_to_value
from nexus.user.v1 import user_pb2
from tests.support import Tokens, rpc_error
from tests.user.conftest import SignUp
from tests.user.test_connections import new_connection

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub


async def test_user_b_gets_not_found_for_every_rpc_on_user_a_data(
    stub: UserServiceAsyncStub, sign_up: SignUp, tokens: Tokens
) -> None:
    a, b = await sign_up(), await sign_up()
    theme = user_pb2.Setting(key="theme", value=json_to_value("dark"))
    await stub.SetSetting(user_pb2.SetSettingRequest(setting=theme), metadata=a.metadata)
    await stub.UpdateProfile(
        user_pb2.UpdateProfileRequest(profile=user_pb2.Profile(nickname="A", principles=["mine"])),
        metadata=a.metadata,
    )
    conn = await stub.CreateConnection(new_connection(), metadata=a.metadata)
    reveal = user_pb2.RevealConnectionCredentialsRequest(connection_id=conn.id)
    await stub.RevealConnectionCredentials(reveal, metadata=tokens.service("user.connections.reveal"))
    before = await stub.GetConnection(user_pb2.GetConnectionRequest(connection_id=conn.id), metadata=a.metadata)

    mask = field_mask_pb2.FieldMask
    attempts: dict[str, Any] = {
        "GetUser": stub.GetUser(user_pb2.GetUserRequest(user_id=a.user_id), metadata=b.metadata),
        "DeactivateUser": stub.DeactivateUser(user_pb2.DeactivateUserRequest(user_id=a.user_id), metadata=b.metadata),
        "GetProfile": stub.GetProfile(user_pb2.GetProfileRequest(user_id=a.user_id), metadata=b.metadata),
        "UpdateProfile": stub.UpdateProfile(
            user_pb2.UpdateProfileRequest(
                profile=user_pb2.Profile(user_id=a.user_id, nickname="pwned"), update_mask=mask(paths=["nickname"])
            ),
            metadata=b.metadata,
        ),
        "GetSetting": stub.GetSetting(user_pb2.GetSettingRequest(user_id=a.user_id, key="theme"), metadata=b.metadata),
        "ListSettings": stub.ListSettings(user_pb2.ListSettingsRequest(user_id=a.user_id), metadata=b.metadata),
        "SetSetting": stub.SetSetting(
            user_pb2.SetSettingRequest(user_id=a.user_id, setting=theme), metadata=b.metadata
        ),
        "DeleteSetting": stub.DeleteSetting(
            user_pb2.DeleteSettingRequest(user_id=a.user_id, key="theme"), metadata=b.metadata
        ),
        "GetConnection": stub.GetConnection(user_pb2.GetConnectionRequest(connection_id=conn.id), metadata=b.metadata),
        "UpdateConnection": stub.UpdateConnection(
            user_pb2.UpdateConnectionRequest(
                connection=user_pb2.Connection(id=conn.id, display_name="pwned"),
                credentials=dict_to_struct({"api_key": "attacker"}),
                update_mask=mask(paths=["display_name", "credentials"]),
            ),
            metadata=b.metadata,
        ),
        "DeleteConnection": stub.DeleteConnection(
            user_pb2.DeleteConnectionRequest(connection_id=conn.id), metadata=b.metadata
        ),
        "VerifyConnection": stub.VerifyConnection(
            user_pb2.VerifyConnectionRequest(connection_id=conn.id), metadata=b.metadata
        ),
        "ListCredentialReveals": stub.ListCredentialReveals(
            user_pb2.ListCredentialRevealsRequest(user_id=a.user_id), metadata=b.metadata
        ),
    }
    for name, call in attempts.items():
        failure = await rpc_error(call)
        assert failure.code == grpc.StatusCode.NOT_FOUND, name

    # Lists show B only B's things, even when filtered by A's objects.
    own_theme = user_pb2.Setting(key="theme", value=json_to_value("light"))
    await stub.SetSetting(user_pb2.SetSettingRequest(setting=own_theme), metadata=b.metadata)
    settings = await stub.ListSettings(user_pb2.ListSettingsRequest(), metadata=b.metadata)
    assert [(s.user_id, s.value.string_value) for s in settings.settings] == [(b.user_id, "light")]
    assert not (await stub.ListConnections(user_pb2.ListConnectionsRequest(), metadata=b.metadata)).connections
    reveals = user_pb2.ListCredentialRevealsRequest(connection_id=conn.id)
    assert not (await stub.ListCredentialReveals(reveals, metadata=b.metadata)).reveals

    # A's data is untouched.
    after = await stub.GetConnection(user_pb2.GetConnectionRequest(connection_id=conn.id), metadata=a.metadata)
    assert after == before
    profile = await stub.GetProfile(user_pb2.GetProfileRequest(), metadata=a.metadata)
    assert (profile.nickname, list(profile.principles)) == ("A", ["mine"])
    setting = await stub.GetSetting(user_pb2.GetSettingRequest(key="theme"), metadata=a.metadata)
    assert setting.value.string_value == "dark"
    assert (await stub.GetUser(user_pb2.GetUserRequest(), metadata=a.metadata)).active


async def test_a_page_token_of_one_user_is_useless_to_another(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    a, b = await sign_up(), await sign_up()
    for key in ["a1", "a2", "a3"]:
        setting = user_pb2.Setting(key=key, value=json_to_value(1))
        await stub.SetSetting(user_pb2.SetSettingRequest(setting=setting), metadata=a.metadata)
    page = await stub.ListSettings(user_pb2.ListSettingsRequest(page_size=1), metadata=a.metadata)
    assert page.next_page_token
    failure = await rpc_error(
        stub.ListSettings(user_pb2.ListSettingsRequest(page_token=page.next_page_token), metadata=b.metadata)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_service_tokens_cannot_use_user_only_methods(stub: UserServiceAsyncStub, tokens: Tokens) -> None:
    admin = tokens.service("user.admin", "user.connections.reveal", "user.profiles.read")
    calls: list[Any] = [
        stub.ListSettings(user_pb2.ListSettingsRequest(), metadata=admin),
        stub.ListConnections(user_pb2.ListConnectionsRequest(), metadata=admin),
        stub.CreateConnection(new_connection(), metadata=admin),
    ]
    for call in calls:
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")
