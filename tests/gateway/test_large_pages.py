"""The gateway's composite answers end before the message limit too (DESIGN §5): GetSidebar puts
three lists in one message and GetMe puts the settings beside the account and the profile, so
each pages with a token, and paging returns every item exactly once, in the services' order."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.gateway.v1 import gateway_pb2_grpc as pb_grpc
from nexus.kit.channels import open_channel
from nexus.kit.config import Settings
from nexus.kit.validation import json_to_value
from nexus.runtime.v1 import artifact_pb2, artifact_pb2_grpc, runtime_pb2, runtime_pb2_grpc, task_pb2
from nexus.user.v1 import user_pb2, user_pb2_grpc
from tests.gateway.conftest import Account, Catalog, Platform, SignUp
from tests.pages import MEGABYTE_TEXT
from tests.support import rpc_error


@pytest.fixture(scope="module")
async def channels(settings: Settings, platform: Platform) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """Channels with the platform's own limits (a default gRPC client receives 4 MiB at most)."""
    opened = {name: open_channel(settings, getattr(platform, name).address) for name in ("gateway", "runtime", "user")}
    yield opened
    for channel in opened.values():
        await channel.close()


async def _big_task(runtime: Any, account: Account, agent_id: str, *, pinned: bool) -> str:
    task = task_pb2.Task(agent_id=agent_id, trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title="big")
    task.inputs.update({"blob": MEGABYTE_TEXT})
    created = await runtime.CreateTask(runtime_pb2.CreateTaskRequest(task=task), metadata=account.md)
    if pinned:
        change = task_pb2.Task(task_id=created.task_id, is_pinned=True)
        mask = field_mask_pb2.FieldMask(paths=["is_pinned"])
        await runtime.UpdateTask(runtime_pb2.UpdateTaskRequest(task=change, update_mask=mask), metadata=account.md)
    return str(created.task_id)


async def _big_pinned_artifact(artifacts: Any, account: Account, task_id: str, n: int) -> str:
    data = f"artifact {n}".encode()
    artifact = artifact_pb2.Artifact(
        task_id=task_id,
        type="pdf",
        display_name=f"a{n}.pdf",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        is_pinned=True,
    )
    artifact.meta_data.update({"notes": MEGABYTE_TEXT})

    async def parts() -> AsyncIterator[artifact_pb2.CreateArtifactRequest]:
        yield artifact_pb2.CreateArtifactRequest(header=artifact_pb2.ArtifactHeader(artifact=artifact))
        yield artifact_pb2.CreateArtifactRequest(chunk=data)

    return str((await artifacts.CreateArtifact(parts(), metadata=account.md)).artifact_id)


async def test_a_sidebar_of_1_mb_tasks_and_artifacts_pages_through_each_once_in_order(
    channels: dict[str, grpc.aio.Channel], settings: Settings, sign_up: SignUp, catalog: Catalog
) -> None:
    gw: Any = pb_grpc.GatewayServiceStub(channels["gateway"])
    runtime: Any = runtime_pb2_grpc.RuntimeServiceStub(channels["runtime"])
    artifacts: Any = artifact_pb2_grpc.ArtifactServiceStub(channels["runtime"])
    account = await sign_up()
    agent_id = await catalog.agent()
    for i in range(18):
        await _big_task(runtime, account, agent_id, pinned=i % 2 == 0)
    first_task = (await runtime.ListTasks(runtime_pb2.ListTasksRequest(page_size=1), metadata=account.md)).tasks[0]
    for n in range(5):
        await _big_pinned_artifact(artifacts, account, first_task.task_id, n)

    # What the services list, in their order: the sidebar must show exactly this.
    expected_tasks: list[task_pb2.Task] = []
    token = ""
    while True:
        page = await runtime.ListTasks(runtime_pb2.ListTasksRequest(page_token=token), metadata=account.md)
        expected_tasks += page.tasks
        if not (token := page.next_page_token):
            break
    listed = await artifacts.ListArtifacts(artifact_pb2.ListArtifactsRequest(page_size=5), metadata=account.md)

    pinned: list[str] = []
    recent: list[str] = []
    pinned_artifacts: list[str] = []
    pages = 0
    token = ""
    while True:
        sidebar = await gw.GetSidebar(pb.GetSidebarRequest(recent_page_size=100, page_token=token), metadata=account.md)
        pages += 1
        assert sidebar.ByteSize() <= settings.max_message_bytes
        assert sidebar.pinned_tasks or sidebar.recent_tasks or sidebar.pinned_artifacts
        pinned += [t.task_id for t in sidebar.pinned_tasks]
        recent += [t.task_id for t in sidebar.recent_tasks]
        pinned_artifacts += [a.artifact_id for a in sidebar.pinned_artifacts]
        if not (token := sidebar.next_page_token):
            break
    assert pinned == [t.task_id for t in expected_tasks if t.is_pinned] and len(pinned) == 9
    assert recent == [t.task_id for t in expected_tasks if not t.is_pinned] and len(recent) == 9
    assert pinned_artifacts == [a.artifact_id for a in listed.artifacts]
    assert pages >= 3  # 23 items of about 1 MB, at most eight in each 8 MiB message


async def test_the_sidebar_keeps_its_caps_across_pages(
    channels: dict[str, grpc.aio.Channel], sign_up: SignUp, catalog: Catalog
) -> None:
    gw: Any = pb_grpc.GatewayServiceStub(channels["gateway"])
    runtime: Any = runtime_pb2_grpc.RuntimeServiceStub(channels["runtime"])
    account = await sign_up()
    agent_id = await catalog.agent()
    for _ in range(10):
        await _big_task(runtime, account, agent_id, pinned=False)
    recent: list[str] = []
    token = ""
    while True:
        sidebar = await gw.GetSidebar(pb.GetSidebarRequest(recent_page_size=9, page_token=token), metadata=account.md)
        recent += [t.task_id for t in sidebar.recent_tasks]
        if not (token := sidebar.next_page_token):
            break
    assert len(recent) == len(set(recent)) == 9


async def test_sidebar_and_settings_tokens_are_checked_and_bound_to_their_request(
    gw: Any, alice: Account, bob: Account
) -> None:
    for request in (
        pb.GetSidebarRequest(page_token="garbage!"),
        pb.GetSidebarRequest(page_token="x" * 3000),
    ):
        failure = await rpc_error(gw.GetSidebar(request, metadata=alice.md))
        assert (failure.code, failure.reason, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN" if len(request.page_token) < 2048 else "INVALID_ARGUMENT",
            {"page_token"},
        )
    failure = await rpc_error(gw.GetMe(pb.GetMeRequest(settings_page_token="garbage!"), metadata=alice.md))
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
        {"settings_page_token"},
    )


async def test_get_me_pages_through_settings_that_overflow_one_message(
    channels: dict[str, grpc.aio.Channel], settings: Settings, sign_up: SignUp
) -> None:
    gw: Any = pb_grpc.GatewayServiceStub(channels["gateway"])
    users: Any = user_pb2_grpc.UserServiceStub(channels["user"])
    account = await sign_up()
    profile = user_pb2.Profile(principles=["p" * 500] * 50)
    profile.preferences.update({"notes": "n" * 60_000})
    await users.UpdateProfile(user_pb2.UpdateProfileRequest(profile=profile), metadata=account.md)
    keys = [f"big.{i:03d}" for i in range(140)]  # 140 of 64 KB: more than one 8 MiB message
    for key in keys:
        setting = user_pb2.Setting(key=key, value=json_to_value("s" * 64_000))
        await users.SetSetting(user_pb2.SetSettingRequest(setting=setting), metadata=account.md)

    listed: list[str] = []
    pages = 0
    token = ""
    while True:
        me = await gw.GetMe(pb.GetMeRequest(settings_page_token=token), metadata=account.md)
        pages += 1
        assert me.ByteSize() <= settings.max_message_bytes
        assert me.user.id == account.user_id and me.profile.preferences["notes"]
        listed += [s.key for s in me.settings]
        if not (token := me.settings_next_page_token):
            break
    assert listed == keys and pages > 1
