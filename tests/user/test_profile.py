"""Profiles: field-masked updates, preferences as a JSON merge-patch target, principles, etags."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from nexus.kit.validation import dict_to_struct, struct_to_dict
from nexus.user.v1 import user_pb2
from services.user.domain.profile import BCP47, merge_patch
from tests.support import Tokens, rpc_error
from tests.user.conftest import Account, SignUp

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def prefs(**values: object) -> struct_pb2.Struct:
    return dict_to_struct(values)  # type: ignore[arg-type]


async def update(
    stub: UserServiceAsyncStub, account: Account, profile: user_pb2.Profile, *paths: str
) -> user_pb2.Profile:
    request = user_pb2.UpdateProfileRequest(profile=profile, update_mask=mask(*paths))
    return await stub.UpdateProfile(request, metadata=account.metadata)


async def test_preferences_merge_known_keys_checked_unknown_keys_kept(
    stub: UserServiceAsyncStub, sign_up: SignUp
) -> None:
    account = await sign_up()
    first = await update(
        stub,
        account,
        user_pb2.Profile(preferences=prefs(theme="dark", language="zh-Hans", custom={"a": 1, "b": [1, 2]})),
        "preferences",
    )
    assert struct_to_dict(first.preferences) == {
        "theme": "dark",
        "language": "zh-Hans",
        "custom": {"a": 1, "b": [1, 2]},
    }
    # RFC 7386: members merge, null removes, nested objects merge recursively.
    patch = prefs(theme=None, risk_level="high", output_style="concise", custom={"a": None, "c": True})
    second = await update(stub, account, user_pb2.Profile(preferences=patch), "preferences")
    assert struct_to_dict(second.preferences) == {
        "language": "zh-Hans",
        "risk_level": "high",
        "output_style": "concise",
        "custom": {"b": [1, 2], "c": True},
    }
    assert second.etag != first.etag


@pytest.mark.parametrize(
    ("preferences", "field"),
    [
        ({"theme": "purple"}, "profile.preferences.theme"),
        ({"theme": 1}, "profile.preferences.theme"),
        ({"language": "english please"}, "profile.preferences.language"),
        ({"language": "e"}, "profile.preferences.language"),
        ({"risk_level": "extreme"}, "profile.preferences.risk_level"),
        ({"output_style": "verbose"}, "profile.preferences.output_style"),
    ],
)
async def test_known_preference_keys_reject_unknown_values(
    stub: UserServiceAsyncStub, alice: Account, preferences: dict[str, object], field: str
) -> None:
    failure = await rpc_error(update(stub, alice, user_pb2.Profile(preferences=prefs(**preferences)), "preferences"))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == {field}


def test_language_tags_follow_bcp47() -> None:
    for tag in [
        "en",
        "zh-Hans",
        "zh-Hans-CN",
        "pt-BR",
        "es-419",
        "sr-Latn-RS",
        "de-CH-1901",
        "en-US-x-twain",
        "x-klingon",
    ]:
        assert BCP47.fullmatch(tag), tag
    for tag in ["", "e", "english", "en_US", "zh-", "-en", "en--US", "123", "en-US-x"]:
        assert not BCP47.fullmatch(tag), tag


def test_merge_patch_follows_rfc_7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


async def test_principles_are_ordered_and_bounded(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    principles = ["Always cite sources", "No emojis in reports", "中文回答"]
    reply = await update(stub, account, user_pb2.Profile(principles=principles), "principles")
    assert list(reply.principles) == principles
    too_many = await rpc_error(update(stub, account, user_pb2.Profile(principles=["p"] * 51), "principles"))
    assert too_many.fields == {"profile.principles"}
    too_long = await rpc_error(update(stub, account, user_pb2.Profile(principles=["ok", "x" * 501]), "principles"))
    assert too_long.fields == {"profile.principles[1]"}
    blank = await rpc_error(update(stub, account, user_pb2.Profile(principles=["  "]), "principles"))
    assert blank.fields == {"profile.principles[0]"}
    cleared = await update(stub, account, user_pb2.Profile(), "principles")
    assert list(cleared.principles) == []


async def test_nickname_and_avatar_url(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up(nickname="Shawn")
    profile = await stub.GetProfile(user_pb2.GetProfileRequest(), metadata=account.metadata)
    assert profile.nickname == "Shawn" and profile.avatar_url == ""
    # An empty mask updates the fields that are set (AIP-134).
    reply = await update(
        stub, account, user_pb2.Profile(nickname="Shawn Z", avatar_url="https://cdn.example.com/a.png")
    )
    assert (reply.nickname, reply.avatar_url) == ("Shawn Z", "https://cdn.example.com/a.png")
    failure = await rpc_error(
        update(stub, account, user_pb2.Profile(nickname="", avatar_url="javascript:alert(1)"), "nickname", "avatar_url")
    )
    assert failure.fields == {"profile.nickname", "profile.avatar_url"}
    failure = await rpc_error(update(stub, account, user_pb2.Profile(nickname="x" * 65), "nickname"))
    assert failure.fields == {"profile.nickname"}
    cleared = await update(stub, account, user_pb2.Profile(), "avatar_url")
    assert cleared.avatar_url == "" and cleared.nickname == "Shawn Z"
    failure = await rpc_error(update(stub, account, user_pb2.Profile(nickname="n"), "email"))
    assert failure.fields == {"update_mask"}


async def test_a_stale_etag_is_aborted(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    read = await stub.GetProfile(user_pb2.GetProfileRequest(), metadata=account.metadata)
    mine = await update(stub, account, user_pb2.Profile(nickname="first", etag=read.etag), "nickname")
    failure = await rpc_error(update(stub, account, user_pb2.Profile(nickname="second", etag=read.etag), "nickname"))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    again = await update(stub, account, user_pb2.Profile(nickname="second", etag=mine.etag), "nickname")
    assert again.nickname == "second"


async def test_agents_read_profiles_only_with_the_profiles_scope(
    stub: UserServiceAsyncStub, alice: Account, tokens: Tokens
) -> None:
    reader = tokens.service("user.profiles.read", name="worker")
    profile = await stub.GetProfile(user_pb2.GetProfileRequest(user_id=alice.user_id), metadata=reader)
    assert profile.user_id == alice.user_id
    failure = await rpc_error(stub.GetProfile(user_pb2.GetProfileRequest(), metadata=reader))
    assert failure.fields == {"user_id"}
    failure = await rpc_error(
        stub.GetProfile(user_pb2.GetProfileRequest(user_id=alice.user_id), metadata=tokens.service("runtime.worker"))
    )
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    # Updates are the user's own business.
    failure = await rpc_error(
        stub.UpdateProfile(
            user_pb2.UpdateProfileRequest(profile=user_pb2.Profile(user_id=alice.user_id, nickname="x")),
            metadata=reader,
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")
