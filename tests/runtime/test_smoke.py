"""A task's life through real channels, end to end."""

from __future__ import annotations

import asyncio
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.runtime.conftest import Metadata, all_events, append, claim_one, collect, create_task, message, said


async def test_a_task_lives_from_queued_to_finished_and_its_stream_ends(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    user_id, user = owner
    task = await create_task(stub, user, agent, title="scan acme")
    assert task.status == task_pb2.TASK_STATUS_QUEUED and task.user_id == user_id and task.last_seq == 1
    stream = asyncio.ensure_future(collect(stub, user, task.task_id))
    await append(stub, user, task.task_id, message("hello"))
    claimed = await claim_one(stub, worker, agent)
    assert claimed.task.status == task_pb2.TASK_STATUS_RUNNING
    await append(stub, worker, task.task_id, said("working on it"), lease_id=claimed.lease.lease_id)
    finished = await stub.FinishTask(
        runtime_pb2.FinishTaskRequest(task_id=task.task_id, lease_id=claimed.lease.lease_id), metadata=worker
    )
    assert finished.status == task_pb2.TASK_STATUS_FINISHED
    events = await asyncio.wait_for(stream, 10)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.type for e in events] == [
        task_pb2.EVENT_TYPE_STATUS,
        task_pb2.EVENT_TYPE_MESSAGE,
        task_pb2.EVENT_TYPE_STATUS,
        task_pb2.EVENT_TYPE_MESSAGE,
        task_pb2.EVENT_TYPE_STATUS,
    ]
    assert events[-1].metadata["status"] == "finished"
    assert [e.seq for e in await all_events(stub, user, task.task_id)] == [1, 2, 3, 4, 5]


async def test_health_and_reflection_list_every_runtime_service(runtime: Any, open_channel: Any) -> None:
    channel = open_channel(runtime.address)
    expected = {
        f"nexus.runtime.v1.{name}"
        for name in ("RuntimeService", "SessionService", "WorkspaceService", "ArtifactService", "ScheduleService")
    }
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
    names: set[str] = set()
    async for response in reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        names |= {s.name for s in response.list_services_response.service}
    assert expected <= names
    health: Any = health_pb2_grpc.HealthStub(channel)
    for name in expected:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
