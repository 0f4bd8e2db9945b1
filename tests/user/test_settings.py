"""Settings (seed 000): a JSON value per user and key; get, set, delete, list."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import struct_pb2

from nexus.kit.validation import json_to_value, value_to_json
from nexus.user.v1 import user_pb2
from tests.support import rpc_error
from tests.user.conftest import Account, SignUp

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub


def setting(key: str, value: object, etag: str = "") -> user_pb2.SetSettingRequest:
    return user_pb2.SetSettingRequest(
        setting=user_pb2.Setting(key=key, value=json_to_value(value), etag=etag)  # type: ignore[arg-type]
    )


async def test_set_get_replace_and_delete_any_json_value(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    md = account.metadata
    for value in [True, 3, 2.5, "dark", None, [1, "a"], {"nested": {"deep": [1, 2, {"x": None}]}}]:
        stored = await stub.SetSetting(setting("ui.value", value), metadata=md)
        assert value_to_json(stored.value) == value
        fetched = await stub.GetSetting(user_pb2.GetSettingRequest(key="ui.value"), metadata=md)
        assert value_to_json(fetched.value) == value
        assert (fetched.id, fetched.user_id, fetched.etag) == (stored.id, account.user_id, stored.etag)
    await stub.DeleteSetting(user_pb2.DeleteSettingRequest(key="ui.value"), metadata=md)
    failure = await rpc_error(stub.GetSetting(user_pb2.GetSettingRequest(key="ui.value"), metadata=md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "SETTING_NOT_FOUND")
    failure = await rpc_error(stub.DeleteSetting(user_pb2.DeleteSettingRequest(key="ui.value"), metadata=md))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_etags_refuse_lost_updates(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    md = account.metadata
    first = await stub.SetSetting(setting("theme", "dark"), metadata=md)
    second = await stub.SetSetting(setting("theme", "light", etag=first.etag), metadata=md)
    failure = await rpc_error(stub.SetSetting(setting("theme", "system", etag=first.etag), metadata=md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    failure = await rpc_error(
        stub.DeleteSetting(user_pb2.DeleteSettingRequest(key="theme", etag=first.etag), metadata=md)
    )
    assert failure.code == grpc.StatusCode.ABORTED
    await stub.DeleteSetting(user_pb2.DeleteSettingRequest(key="theme", etag=second.etag), metadata=md)


async def test_list_pages_through_every_key_in_order(stub: UserServiceAsyncStub, sign_up: SignUp) -> None:
    account = await sign_up()
    md = account.metadata
    keys = [f"k{i:02d}" for i in range(7)]
    for key in reversed(keys):
        await stub.SetSetting(setting(key, key), metadata=md)
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListSettings(user_pb2.ListSettingsRequest(page_size=3, page_token=token), metadata=md)
        assert len(page.settings) <= 3
        seen += [s.key for s in page.settings]
        token = page.next_page_token
        if not token:
            break
    assert seen == keys
    everything = await stub.ListSettings(user_pb2.ListSettingsRequest(page_size=10**9), metadata=md)
    assert [s.key for s in everything.settings] == keys and everything.next_page_token == ""


@pytest.mark.parametrize("key", ["", "Theme", "1theme", "with space", "ü", "x" * 129, "a/b", "nul\x00"])
async def test_keys_are_validated(stub: UserServiceAsyncStub, alice: Account, key: str) -> None:
    failure = await rpc_error(stub.SetSetting(setting(key, 1), metadata=alice.metadata))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == {"setting.key"}
    failure = await rpc_error(stub.GetSetting(user_pb2.GetSettingRequest(key=key), metadata=alice.metadata))
    assert failure.fields == {"key"}


async def test_a_value_is_required_and_bounded(stub: UserServiceAsyncStub, alice: Account) -> None:
    request = user_pb2.SetSettingRequest(setting=user_pb2.Setting(key="empty"))
    failure = await rpc_error(stub.SetSetting(request, metadata=alice.metadata))
    assert failure.fields == {"setting.value"}
    failure = await rpc_error(stub.SetSetting(setting("big", "x" * (65 * 1024)), metadata=alice.metadata))
    assert failure.fields == {"setting.value"}
    request = user_pb2.SetSettingRequest(
        setting=user_pb2.Setting(key="inf", value=struct_pb2.Value(number_value=float("inf")))
    )
    failure = await rpc_error(stub.SetSetting(request, metadata=alice.metadata))
    assert failure.fields == {"setting.value"}
