"""A user's own large writes never make their lists unreadable (DESIGN §5: a page ends before the
message limit, however large its items). Each list below holds more ~1 MB items than one 8 MiB
message can carry; paging from the first page to the last returns each item exactly once."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from launch.registry import RUNTIME
from nexus.kit.channels import open_channel
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, running
from nexus.runtime.v1 import (
    artifact_pb2,
    artifact_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    task_pb2,
    workspace_pb2,
    workspace_pb2_grpc,
)
from tests.pages import MEGABYTE_TEXT, MiB, page_through
from tests.runtime.conftest import Metadata, append, create_task, message
from tests.support import rpc_error


@pytest.fixture(scope="module")
async def wide(settings: Settings, runtime: NexusServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel with the platform's own limits (a default gRPC client receives 4 MiB at most)."""
    channel = open_channel(settings, runtime.address)
    yield channel
    await channel.close()


def big_task(agent: str, index: int) -> runtime_pb2.CreateTaskRequest:
    task = task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title=f"big {index}")
    task.inputs.update({"blob": MEGABYTE_TEXT})
    return runtime_pb2.CreateTaskRequest(task=task)


async def test_nine_sessions_with_1_mb_configs_page_through_each_once(
    wide: grpc.aio.Channel, settings: Settings, owner: tuple[str, Metadata]
) -> None:
    sessions: Any = session_pb2_grpc.SessionServiceStub(wide)
    _, user = owner
    created = []
    for i in range(9):
        request = session_pb2.CreateSessionRequest(session=session_pb2.Session(title=f"s{i}"))
        request.session.config.update({"blob": MEGABYTE_TEXT})
        created.append((await sessions.CreateSession(request, metadata=user)).session_id)

    async def fetch(token: str) -> Any:
        return await sessions.ListSessions(session_pb2.ListSessionsRequest(page_token=token), metadata=user)

    ids, pages = await page_through(
        fetch, lambda r: r.sessions, lambda s: s.session_id, limit=settings.max_message_bytes
    )
    assert sorted(ids) == sorted(created) and pages > 1


async def test_nine_tasks_with_1_mb_inputs_page_through_each_once(
    wide: grpc.aio.Channel, settings: Settings, owner: tuple[str, Metadata], agent: str
) -> None:
    stub: Any = runtime_pb2_grpc.RuntimeServiceStub(wide)
    _, user = owner
    created = [(await stub.CreateTask(big_task(agent, i), metadata=user)).task_id for i in range(9)]

    async def fetch(token: str) -> Any:
        return await stub.ListTasks(runtime_pb2.ListTasksRequest(page_size=1000, page_token=token), metadata=user)

    ids, pages = await page_through(fetch, lambda r: r.tasks, lambda t: t.task_id, limit=settings.max_message_bytes)
    assert sorted(ids) == sorted(created) and pages > 1


async def test_twelve_1_mib_events_page_through_each_once_in_order(
    wide: grpc.aio.Channel, settings: Settings, owner: tuple[str, Metadata], agent: str
) -> None:
    stub: Any = runtime_pb2_grpc.RuntimeServiceStub(wide)
    _, user = owner
    task = await create_task(stub, user, agent)
    for i in range(12):
        await append(stub, user, task.task_id, message(f"{i:02d}" + "e" * (MiB - 2)))

    async def fetch(token: str) -> Any:
        request = runtime_pb2.ListTaskEventsRequest(task_id=task.task_id, page_size=1000, page_token=token)
        return await stub.ListTaskEvents(request, metadata=user)

    seqs, pages = await page_through(fetch, lambda r: r.events, lambda e: str(e.seq), limit=settings.max_message_bytes)
    assert [int(s) for s in seqs] == list(range(1, 14)) and pages > 1  # the status event, then the twelve


async def test_nine_claims_of_1_mb_tasks_fit_their_answers_and_leave_the_rest_queued(
    wide: grpc.aio.Channel, settings: Settings, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    stub: Any = runtime_pb2_grpc.RuntimeServiceStub(wide)
    _, user = owner
    created = {(await stub.CreateTask(big_task(agent, i), metadata=user)).task_id for i in range(9)}
    claimed: list[str] = []
    for _ in range(len(created)):
        reply = await stub.ClaimTasks(runtime_pb2.ClaimTasksRequest(agent_ids=[agent], max_tasks=50), metadata=worker)
        assert reply.ByteSize() <= settings.max_message_bytes
        claimed += [c.task.task_id for c in reply.claimed]
        if not reply.claimed:
            break
    assert sorted(claimed) == sorted(created)
    for task_id in created:  # each claim left its task running under the lease it answered
        assert (await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task_id), metadata=user)).status == (
            task_pb2.TASK_STATUS_RUNNING
        )


async def test_nine_schedules_with_1_mb_inputs_page_through_each_once(
    wide: grpc.aio.Channel, settings: Settings, owner: tuple[str, Metadata], agent: str
) -> None:
    schedules: Any = schedule_pb2_grpc.ScheduleServiceStub(wide)
    _, user = owner
    created = []
    for i in range(9):
        command = schedule_pb2.ScheduledCommand(agent_id=agent, title=f"nightly {i}")
        command.inputs.update({"blob": MEGABYTE_TEXT})
        request = schedule_pb2.CreateScheduleRequest(schedule=schedule_pb2.Schedule(cron="0 3 * * *", command=command))
        created.append((await schedules.CreateSchedule(request, metadata=user)).schedule_id)

    async def fetch(token: str) -> Any:
        return await schedules.ListSchedules(schedule_pb2.ListSchedulesRequest(page_token=token), metadata=user)

    ids, pages = await page_through(
        fetch, lambda r: r.schedules, lambda s: s.schedule_id, limit=settings.max_message_bytes
    )
    assert sorted(ids) == sorted(created) and pages > 1


async def test_nine_artifacts_with_1_mb_meta_data_page_through_each_once(
    wide: grpc.aio.Channel, settings: Settings, owner: tuple[str, Metadata], agent: str
) -> None:
    stub: Any = runtime_pb2_grpc.RuntimeServiceStub(wide)
    artifacts: Any = artifact_pb2_grpc.ArtifactServiceStub(wide)
    _, user = owner
    task = await create_task(stub, user, agent)
    created = []
    for i in range(9):
        data = f"artifact {i}".encode()
        artifact = artifact_pb2.Artifact(
            task_id=task.task_id,
            type="pdf",
            display_name=f"a{i}.pdf",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        artifact.meta_data.update({"notes": MEGABYTE_TEXT})

        async def upload(artifact: artifact_pb2.Artifact = artifact, data: bytes = data) -> AsyncIterator[Any]:
            yield artifact_pb2.CreateArtifactRequest(header=artifact_pb2.ArtifactHeader(artifact=artifact))
            yield artifact_pb2.CreateArtifactRequest(chunk=data)

        created.append((await artifacts.CreateArtifact(upload(), metadata=user)).artifact_id)

    async def fetch(token: str) -> Any:
        request = artifact_pb2.ListArtifactsRequest(task_id=task.task_id, page_size=1000, page_token=token)
        return await artifacts.ListArtifacts(request, metadata=user)

    ids, pages = await page_through(
        fetch, lambda r: r.artifacts, lambda a: a.artifact_id, limit=settings.max_message_bytes
    )
    assert sorted(ids) == sorted(created) and pages > 1


async def test_memories_with_large_summaries_and_takeaways_page_through_each_once(
    wide: grpc.aio.Channel, settings: Settings, owner: tuple[str, Metadata], agent: str
) -> None:
    """On a replica whose message limit is 1 MiB, so that a few memories overflow it (100 of the
    largest, 100 takeaways of 2000 three-byte characters each, overflow 8 MiB alike)."""
    stub: Any = runtime_pb2_grpc.RuntimeServiceStub(wide)
    workspace: Any = workspace_pb2_grpc.WorkspaceServiceStub(wide)
    _, user = owner
    created = []
    for i in range(5):  # about 300 KB each on the wire
        task = await create_task(stub, user, agent)
        memory = workspace_pb2.TaskMemory(
            task_id=task.task_id,
            summary_text=f"zebra crossing {i} " + "\u4e2d" * 19_000,
            key_takeaways=["\u6587" * 2000] * 40,
        )
        await workspace.PutTaskMemory(workspace_pb2.PutTaskMemoryRequest(memory=memory), metadata=user)
        created.append(task.task_id)
    async with running(RUNTIME, dataclasses.replace(settings, max_message_bytes=MiB)) as small:
        channel = open_channel(settings, small.address)
        try:
            search: Any = workspace_pb2_grpc.WorkspaceServiceStub(channel)

            async def fetch(token: str) -> Any:
                request = workspace_pb2.SearchTaskMemoriesRequest(
                    query="zebra crossing", page_size=100, page_token=token
                )
                return await search.SearchTaskMemories(request, metadata=user)

            ids, pages = await page_through(fetch, lambda r: r.results, lambda m: m.memory.task_id, limit=MiB)
        finally:
            await channel.close()
    assert sorted(ids) == sorted(created) and pages > 1


async def test_an_item_too_large_for_any_message_is_refused_with_its_size_not_sent(
    settings: Settings, owner: tuple[str, Metadata], agent: str, runtime: NexusServer
) -> None:
    """Input limits keep every item far below 8 MiB; an operator may still set a lower limit
    than items already stored. A page holds at least one item (a list always progresses), and
    a single item over the limit is answered RESOURCE_EXHAUSTED with the sizes."""
    _, user = owner
    async with running(RUNTIME, dataclasses.replace(settings, max_message_bytes=256 * 1024)) as small:
        channel = open_channel(settings, small.address)
        try:
            sessions: Any = session_pb2_grpc.SessionServiceStub(channel)
            request = session_pb2.CreateSessionRequest(session=session_pb2.Session(title="mid"))
            request.session.config.update({"blob": "x" * 100_000})
            mid = [(await sessions.CreateSession(request, metadata=user)).session_id for _ in range(5)]

            async def fetch(token: str) -> Any:
                return await sessions.ListSessions(session_pb2.ListSessionsRequest(page_token=token), metadata=user)

            ids, pages = await page_through(fetch, lambda r: r.sessions, lambda s: s.session_id, limit=256 * 1024)
            assert sorted(ids) == sorted(mid) and pages == 3  # two per page, then one

            big = session_pb2.CreateSessionRequest(session=session_pb2.Session(title="big"))
            big.session.config.update({"blob": "x" * 300_000})
            wide_sessions: Any = session_pb2_grpc.SessionServiceStub(open_channel(settings, runtime.address))
            await wide_sessions.CreateSession(big, metadata=user)  # through a server with the usual limit
            failure = await rpc_error(sessions.ListSessions(session_pb2.ListSessionsRequest(), metadata=user))
            assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE")
            assert "larger than the message limit (262144 bytes)" in failure.message
        finally:
            await channel.close()
