"""Bad input never yields INTERNAL or UNKNOWN (DESIGN §5): every class, across the API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from google.protobuf.message import Message

from nexus.kit import paging
from nexus.kit.server import NexusServer
from nexus.kit.validation import JSON, MAX_JSON_DEPTH, dict_to_struct, json_to_value
from nexus.user.v1 import user_pb2
from tests.deep_json import nested_struct, nested_value, with_field
from tests.introspection import (
    assert_health_answers_precisely,
    assert_reflection_answers_precisely,
    buf_curl_list_methods,
)
from tests.support import Tokens, rpc_error
from tests.user.conftest import PASSWORD, Account

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub

MiB = 1024 * 1024
SERVICE = "/nexus.user.v1.UserService"
UUID = "123e4567-e89b-12d3-a456-426614174000"


@dataclass
class Env:
    stub: UserServiceAsyncStub
    user: Account
    tokens: Tokens


def nested_dict(depth: int) -> dict[str, JSON]:
    value: dict[str, JSON] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def nested_list(depth: int) -> JSON:
    value: JSON = []
    for _ in range(depth - 1):
        value = [value]
    return value


def profile_update(**fields: Any) -> user_pb2.UpdateProfileRequest:
    return user_pb2.UpdateProfileRequest(
        profile=user_pb2.Profile(**fields), update_mask=field_mask_pb2.FieldMask(paths=list(fields))
    )


def set_setting(key: str = "k", value: JSON = 1) -> user_pb2.SetSettingRequest:
    return user_pb2.SetSettingRequest(setting=user_pb2.Setting(key=key, value=json_to_value(value)))


def create(
    credentials: dict[str, JSON] | None = None, request_id: str = "", **fields: Any
) -> user_pb2.CreateConnectionRequest:
    connection = {"agent_id": "agent_a", "provider": "notion", "display_name": "n", **fields}
    return user_pb2.CreateConnectionRequest(
        connection=user_pb2.Connection(**connection),
        credentials=dict_to_struct(credentials or {"k": "v"}),
        request_id=request_id,
    )


Call = Callable[[Env], Awaitable[Any]]


def as_user(method: str, request: Message) -> Call:
    return lambda env: getattr(env.stub, method)(request, metadata=env.user.metadata)


def as_service(method: str, request: Message, *scopes: str) -> Call:
    return lambda env: getattr(env.stub, method)(request, metadata=env.tokens.service(*scopes))


def public(method: str, request: Message) -> Call:
    return lambda env: getattr(env.stub, method)(request)


REVEAL = "user.connections.reveal"
CASES: dict[str, tuple[Call, str]] = {
    # NUL characters, in plain fields and inside JSON keys and values.
    "nul in email": (public("SignUp", user_pb2.SignUpRequest(email="a\x00@example.com", password=PASSWORD)), "email"),
    "nul in password": (public("SignIn", user_pb2.SignInRequest(email="a@example.com", password="p\x00")), "password"),
    "nul in nickname": (as_user("UpdateProfile", profile_update(nickname="a\x00b")), "profile.nickname"),
    "nul in a principle": (
        as_user("UpdateProfile", profile_update(principles=["ok", "\x00"])),
        "profile.principles[1]",
    ),
    "nul in a preference value": (
        as_user("UpdateProfile", profile_update(preferences=dict_to_struct({"x": {"y": ["a\x00"]}}))),
        "profile.preferences",
    ),
    "nul in a preference key": (
        as_user("UpdateProfile", profile_update(preferences=dict_to_struct({"x\x00": 1}))),
        "profile.preferences",
    ),
    "nul in a setting key": (as_user("SetSetting", set_setting(key="a\x00")), "setting.key"),
    "nul in a setting value": (as_user("SetSetting", set_setting(value={"deep": ["\x00"]})), "setting.value"),
    "nul in a display name": (as_user("CreateConnection", create(display_name="n\x00")), "connection.display_name"),
    "nul in credentials": (as_user("CreateConnection", create({"token": "t\x00"})), "credentials"),
    "nul in a credentials key": (as_user("CreateConnection", create({"t\x00": "t"})), "credentials"),
    "nul in a purpose": (
        as_service(
            "RevealConnectionCredentials",
            user_pb2.RevealConnectionCredentialsRequest(connection_id=UUID, purpose="\x00"),
            REVEAL,
        ),
        "purpose",
    ),
    "nul in a refresh token": (public("Refresh", user_pb2.RefreshRequest(refresh_token="nxr_\x00")), "refresh_token"),
    # JSON nested deeper than 32.
    "deep preferences": (
        as_user("UpdateProfile", profile_update(preferences=dict_to_struct(nested_dict(33)))),
        "profile.preferences",
    ),
    "deep setting": (as_user("SetSetting", set_setting(value=nested_list(33))), "setting.value"),
    "deep credentials": (as_user("CreateConnection", create(nested_dict(33))), "credentials"),
    # JSON larger than 1 MiB.
    "huge preferences": (
        as_user("UpdateProfile", profile_update(preferences=dict_to_struct({"x": "y" * (MiB + 1)}))),
        "profile.preferences",
    ),
    "huge setting": (as_user("SetSetting", set_setting(value=["z" * 1000] * 1100)), "setting.value"),
    "huge credentials": (as_user("CreateConnection", create({"k": "v" * (MiB + 1)})), "credentials"),
    # Oversized text.
    "long email": (public("SignUp", user_pb2.SignUpRequest(email="e" * 10_000, password=PASSWORD)), "email"),
    "long password": (
        public("SignIn", user_pb2.SignInRequest(email="a@example.com", password="p" * 100_000)),
        "password",
    ),
    "long nickname": (as_user("UpdateProfile", profile_update(nickname="n" * 100_000)), "profile.nickname"),
    "long avatar": (
        as_user("UpdateProfile", profile_update(avatar_url="https://x.io/" + "a" * 5000)),
        "profile.avatar_url",
    ),
    "long setting key": (as_user("GetSetting", user_pb2.GetSettingRequest(key="k" * 10_000)), "key"),
    "long provider": (as_user("CreateConnection", create(provider="p" * 1000)), "connection.provider"),
    "long display name": (as_user("CreateConnection", create(display_name="d" * 10_000)), "connection.display_name"),
    "long refresh token": (public("SignOut", user_pb2.SignOutRequest(refresh_token="t" * 10_000)), "refresh_token"),
    "long etag": (
        as_user("DeleteSetting", user_pb2.DeleteSettingRequest(key="k", etag="e" * 1000)),
        "etag",
    ),
    "long page token": (as_user("ListSettings", user_pb2.ListSettingsRequest(page_token="t" * 10_000)), "page_token"),
    # Negative page sizes.
    "negative settings page": (as_user("ListSettings", user_pb2.ListSettingsRequest(page_size=-1)), "page_size"),
    "negative connections page": (
        as_user("ListConnections", user_pb2.ListConnectionsRequest(page_size=-(2**31))),
        "page_size",
    ),
    "negative reveals page": (
        as_user("ListCredentialReveals", user_pb2.ListCredentialRevealsRequest(page_size=-5)),
        "page_size",
    ),
    "garbage page token": (
        as_user("ListConnections", user_pb2.ListConnectionsRequest(page_token="!!not-a-token")),
        "page_token",
    ),
    # Malformed ids.
    "malformed connection id": (
        as_user("GetConnection", user_pb2.GetConnectionRequest(connection_id="abc")),
        "connection_id",
    ),
    "almost a uuid": (
        as_user("DeleteConnection", user_pb2.DeleteConnectionRequest(connection_id=UUID[:-1] + "Z")),
        "connection_id",
    ),
    "missing connection id": (
        as_user("VerifyConnection", user_pb2.VerifyConnectionRequest(connection_id="")),
        "connection_id",
    ),
    "malformed user id": (as_user("GetProfile", user_pb2.GetProfileRequest(user_id="not-a-uuid")), "user_id"),
    "malformed admin target": (
        as_service("ReactivateUser", user_pb2.ReactivateUserRequest(user_id="x"), "user.admin"),
        "user_id",
    ),
    "malformed request id": (as_user("CreateConnection", create(request_id="again")), "request_id"),
    "malformed agent id": (as_user("CreateConnection", create(agent_id="Bad Agent!")), "connection.agent_id"),
    "malformed agent filter": (
        as_user("ListConnections", user_pb2.ListConnectionsRequest(agent_id="../etc")),
        "agent_id",
    ),
    "malformed update id": (
        as_user(
            "UpdateConnection",
            user_pb2.UpdateConnectionRequest(connection=user_pb2.Connection(id="1", display_name="n")),
        ),
        "connection.id",
    ),
    "malformed audit filter": (
        as_user("ListCredentialReveals", user_pb2.ListCredentialRevealsRequest(connection_id="zz")),
        "connection_id",
    ),
    # Unknown enum values.
    "unknown status on create": (as_user("CreateConnection", create(status=7)), "connection.status"),
    "unknown status on update": (
        as_user(
            "UpdateConnection",
            user_pb2.UpdateConnectionRequest(connection=user_pb2.Connection(id=UUID, status=42)),  # type: ignore[arg-type]
        ),
        "connection.status",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_invalid_argument_naming_the_field(
    case: str, stub: UserServiceAsyncStub, alice: Account, tokens: Tokens
) -> None:
    call, field = CASES[case]
    failure = await rpc_error(call(Env(stub, alice, tokens)))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure.message
    assert field in failure.fields
    assert failure.domain == "nexus.user.v1"


async def test_huge_page_sizes_are_capped_not_refused(stub: UserServiceAsyncStub, alice: Account) -> None:
    reply = await stub.ListSettings(user_pb2.ListSettingsRequest(page_size=2**31 - 1), metadata=alice.metadata)
    assert reply.next_page_token == ""
    await stub.ListConnections(user_pb2.ListConnectionsRequest(page_size=2**31 - 1), metadata=alice.metadata)


async def test_forged_page_tokens_with_a_valid_fingerprint_are_refused(
    stub: UserServiceAsyncStub, alice: Account
) -> None:
    # The fingerprint is not a secret; the cursor inside must still be checked.
    connections = paging.query_fingerprint("connections", alice.user_id, None)
    forged: list[paging.Cursor] = [
        ["not-a-time", UUID],
        ["2026-01-01T00:00:00+00:00", "nope"],
        [1],
        ["2026-01-01T00:00:00", UUID],
    ]
    for cursor in forged:
        token = paging.encode(cursor, connections)
        request = user_pb2.ListConnectionsRequest(page_token=token)
        failure = await rpc_error(stub.ListConnections(request, metadata=alice.metadata))
        assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    settings = paging.query_fingerprint("settings", alice.user_id)
    forged = [[1], [None], ["a", "b"]]
    for cursor in forged:
        request_s = user_pb2.ListSettingsRequest(page_token=paging.encode(cursor, settings))
        failure = await rpc_error(stub.ListSettings(request_s, metadata=alice.metadata))
        assert failure.reason == "INVALID_PAGE_TOKEN"
    reveals = paging.query_fingerprint("reveals", alice.user_id, alice.user_id, None)
    forged = [["x"], [True], [1.5]]
    for cursor in forged:
        request_r = user_pb2.ListCredentialRevealsRequest(page_token=paging.encode(cursor, reveals))
        failure = await rpc_error(stub.ListCredentialReveals(request_r, metadata=alice.metadata))
        assert failure.reason == "INVALID_PAGE_TOKEN"


LONE_SURROGATE = b"\xed\xa0\x80"  # U+D800 in (invalid) UTF-8: a Python client cannot even encode it


def raw_call(stub_channel: grpc.aio.Channel, method: str, response: type[Message]) -> Any:
    return stub_channel.unary_unary(
        f"{SERVICE}/{method}", request_serializer=lambda b: b, response_deserializer=response.FromString
    )


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        (
            "SignUp",
            user_pb2.SignUpRequest(email="XXXX@example.com", password=PASSWORD),
            "email",
        ),
        (
            "UpdateProfile",
            profile_update(preferences=dict_to_struct({"theme": "XXXX"})),
            "profile.preferences.fields.value.string_value",
        ),
        (
            "UpdateProfile",
            profile_update(preferences=dict_to_struct({"XXXX": 1})),
            "profile.preferences.fields.key",
        ),
        (
            "SetSetting",
            set_setting(value={"list": ["ok", "XXXX"]}),
            "setting.value.struct_value.fields.value.list_value.values[1].string_value",
        ),
        ("CreateConnection", create({"XXXX": "secret"}), "credentials.fields.key"),
    ],
)
async def test_lone_surrogates_anywhere_including_inside_json_are_invalid_argument(
    user_server: Any,
    open_channel: Callable[[str], grpc.aio.Channel],
    alice: Account,
    method: str,
    request_message: Message,
    field: str,
) -> None:
    body = request_message.SerializeToString()
    assert body.count(b"XXXX") == 1
    call = raw_call(open_channel(user_server.address), method, struct_pb2.Struct)
    failure = await rpc_error(call(body.replace(b"XXXX", LONE_SURROGATE + b"x"), metadata=alice.metadata))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert failure.fields == {field}


async def test_health_and_reflection_answer_hostile_calls_precisely(
    user_server: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    channel = open_channel(user_server.address)
    await assert_health_answers_precisely(channel, user_server.definition.service_names)
    await assert_reflection_answers_precisely(channel, user_server.definition.service_names)


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
async def test_buf_curl_finds_every_method_by_reflection(user_server: NexusServer, protocol: str) -> None:
    methods = await asyncio.to_thread(buf_curl_list_methods, user_server.address, protocol)
    assert {"nexus.user.v1.UserService/ListSettings", "grpc.health.v1.Health/List"} <= set(methods)


DEEP = f"is nested deeper than {MAX_JSON_DEPTH} levels"
# (method, request, JSON field, Struct or Value)
DEEP_FIELDS: list[tuple[str, Message, str, str]] = [
    ("SetSetting", user_pb2.SetSettingRequest(setting=user_pb2.Setting(key="deep")), "setting.value", "value"),
    ("UpdateProfile", profile_update(nickname="n"), "profile.preferences", "struct"),
    ("CreateConnection", create(), "credentials", "struct"),
]


@pytest.mark.parametrize("depth", [33, 34, 100, 5000])
@pytest.mark.parametrize(("method", "request_message", "field", "kind"), DEEP_FIELDS, ids=[c[2] for c in DEEP_FIELDS])
async def test_json_nested_too_deep_anywhere_names_its_field(
    user_server: Any,
    open_channel: Callable[[str], grpc.aio.Channel],
    alice: Account,
    method: str,
    request_message: Message,
    field: str,
    kind: str,
    depth: int,
) -> None:
    if isinstance(request_message, user_pb2.UpdateProfileRequest):
        request_message.update_mask.paths.append("preferences")
    payload = nested_value(depth) if kind == "value" else nested_struct(depth)
    body = with_field(request_message, field, payload)
    call = raw_call(open_channel(user_server.address), method, struct_pb2.Struct)
    failure = await rpc_error(call(body, metadata=alice.metadata))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [(v.field, v.description) for v in failure.violations] == [(field, DEEP)]
    assert f"{field}: {DEEP}" in failure.message


async def test_a_setting_value_nested_exactly_32_levels_is_accepted(
    user_server: Any, open_channel: Callable[[str], grpc.aio.Channel], alice: Account
) -> None:
    body = with_field(
        user_pb2.SetSettingRequest(setting=user_pb2.Setting(key="deep32")), "setting.value", nested_value(32)
    )
    call = raw_call(open_channel(user_server.address), "SetSetting", user_pb2.Setting)
    stored = await call(body, metadata=alice.metadata)
    assert stored.key == "deep32" and stored.value.struct_value.fields["a"].struct_value.fields


async def test_a_service_token_without_the_scope_is_told_a_users_token_works_too(
    stub: UserServiceAsyncStub, alice: Account, tokens: Tokens
) -> None:
    unscoped = tokens.service("runtime.worker", name="operator")
    cases: list[tuple[Awaitable[Any], str]] = [
        (stub.GetProfile(user_pb2.GetProfileRequest(user_id=alice.user_id), metadata=unscoped), "user.profiles.read"),
        (stub.GetUser(user_pb2.GetUserRequest(user_id=alice.user_id), metadata=unscoped), "user.admin"),
        (
            stub.VerifyConnection(user_pb2.VerifyConnectionRequest(connection_id=UUID), metadata=unscoped),
            "user.connections.verify",
        ),
        (stub.ListCredentialReveals(user_pb2.ListCredentialRevealsRequest(), metadata=unscoped), "user.audit.read"),
    ]
    for call, scope in cases:
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"), scope
        assert failure.message == f"this call needs a user's access token or a service token with scope {scope!r}"
    # Only a scoped service may reveal credentials: there the scope alone is named.
    failure = await rpc_error(
        stub.RevealConnectionCredentials(
            user_pb2.RevealConnectionCredentialsRequest(connection_id=UUID, purpose="p"), metadata=alice.metadata
        )
    )
    assert failure.message == f"this call needs a token with scope {REVEAL!r}"
