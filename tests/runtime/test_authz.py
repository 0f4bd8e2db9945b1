"""Object-level authorization: another user's tasks and events are NOT_FOUND everywhere; worker
calls need the worker scope; owner calls need a user token."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.runtime.conftest import Metadata, append, claim_one, create_task, message, said
from tests.support import Tokens, rpc_error


async def test_another_users_task_and_events_are_not_found_everywhere(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, tokens: Tokens, agent: str
) -> None:
    _, user = owner
    _, stranger = tokens.user()
    task = await create_task(stub, user, agent)
    tid = task.task_id
    calls = [
        stub.GetTask(runtime_pb2.GetTaskRequest(task_id=tid), metadata=stranger),
        stub.UpdateTask(
            runtime_pb2.UpdateTaskRequest(
                task=task_pb2.Task(task_id=tid, title="mine now"), update_mask=field_mask_pb2.FieldMask(paths=["title"])
            ),
            metadata=stranger,
        ),
        stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=tid), metadata=stranger),
        append(stub, stranger, tid, message("hi")),
        stub.ListTaskEvents(runtime_pb2.ListTaskEventsRequest(task_id=tid), metadata=stranger),
        stub.ProvideInput(runtime_pb2.ProvideInputRequest(task_id=tid, answer=message("a")), metadata=stranger),
    ]
    missing = "00000000-0000-4000-8000-000000000000"
    for call in calls:
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND")
    # Exactly as a task that does not exist.
    failure = await rpc_error(stub.GetTask(runtime_pb2.GetTaskRequest(task_id=missing), metadata=user))
    assert (failure.code, failure.reason, failure.message) == (
        grpc.StatusCode.NOT_FOUND,
        "TASK_NOT_FOUND",
        "task not found",
    )
    stream = stub.StreamTaskEvents(runtime_pb2.StreamTaskEventsRequest(task_id=tid), metadata=stranger)
    failure = await rpc_error(_drain(stream))
    assert failure.code == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListTasks(runtime_pb2.ListTasksRequest(agent_id=agent), metadata=stranger)
    assert list(listed.tasks) == []
    # A request_id is per user: the stranger's identical request creates the stranger's own task.
    request = runtime_pb2.CreateTaskRequest(
        task=task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title="x"),
        request_id="11111111-1111-4111-8111-111111111111",
    )
    mine, theirs = await asyncio.gather(
        stub.CreateTask(request, metadata=user), stub.CreateTask(request, metadata=stranger)
    )
    assert mine.task_id != theirs.task_id
    # Nothing the stranger tried changed the task.
    reread = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=tid), metadata=user)
    assert (reread.title, reread.status, reread.last_seq) == (task.title, task_pb2.TASK_STATUS_QUEUED, 1)
    # Workers see the tasks they drive.
    claimed = await claim_one(stub, worker, agent)
    assert (await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=claimed.task.task_id), metadata=worker)).task_id


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


async def test_worker_calls_need_the_worker_scope_and_owner_calls_a_user_token(
    stub: Any, owner: tuple[str, Metadata], tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    unscoped = tokens.service("user.connections.reveal", name="not-a-worker")
    claim = runtime_pb2.ClaimTasksRequest(agent_ids=[agent], max_tasks=1)
    for metadata in (user, unscoped):
        failure = await rpc_error(stub.ClaimTasks(claim, metadata=metadata))
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
    failure = await rpc_error(append(stub, unscoped, task.task_id, said("x"), lease_id=task.task_id))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    worker = tokens.service("runtime.worker")
    create = runtime_pb2.CreateTaskRequest(
        task=task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_CRON_TRIGGER, title="x")
    )
    failure = await rpc_error(stub.CreateTask(create, metadata=worker))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")
    failure = await rpc_error(stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id)))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
