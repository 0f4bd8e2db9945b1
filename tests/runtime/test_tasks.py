"""Tasks: create (idempotent), get, the sidebar list, update with a mask, cancel."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.runtime.conftest import (
    Metadata,
    all_events,
    append,
    claim_one,
    create_session,
    create_skill,
    create_task,
    create_team,
    message,
    said,
)
from tests.support import Tokens, rpc_error


async def test_a_new_task_is_queued_owned_by_the_caller_and_starts_with_a_status_event(
    stub: Any, sessions: Any, ontology: Any, tokens: Tokens, owner: tuple[str, Metadata], agent: str
) -> None:
    user_id, user = owner
    session = await create_session(sessions, user)
    team = await create_team(ontology, tokens, agent)
    skill = await create_skill(ontology, tokens, agent)
    task = await create_task(
        stub, user, agent, team_id=team, session_id=session, origin_skill_id=skill, title="Scan acme"
    )
    assert (task.status, task.user_id, task.team_id, task.session_id) == (
        task_pb2.TASK_STATUS_QUEUED,
        user_id,
        team,
        session,
    )
    assert task.origin_skill_id == skill and task.etag
    events = await all_events(stub, user, task.task_id)
    assert [(e.seq, e.type, e.role) for e in events] == [(1, task_pb2.EVENT_TYPE_STATUS, task_pb2.EVENT_ROLE_SYSTEM)]
    assert events[0].metadata["status"] == "queued"
    assert await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user) == task


async def test_create_is_idempotent_by_request_id_even_when_retried_concurrently(
    stub: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    request = runtime_pb2.CreateTaskRequest(
        task=task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_SLASH_COMMAND, title="once"),
        request_id=str(uuid.uuid4()),
    )
    request.task.inputs.update({"url": "https://acme.com", "depth": 2})
    created = await asyncio.gather(*[stub.CreateTask(request, metadata=user) for _ in range(5)])
    assert len({t.task_id for t in created}) == 1
    assert created[0].inputs["depth"] == 2
    listed = await stub.ListTasks(runtime_pb2.ListTasksRequest(agent_id=agent), metadata=user)
    assert [t.task_id for t in listed.tasks] == [created[0].task_id]


async def test_the_sidebar_lists_pinned_first_then_most_recently_active_with_filters_and_pages(
    stub: Any, sessions: Any, tokens: Tokens, agent: str
) -> None:
    _, user = tokens.user()
    session = await create_session(sessions, user)
    tasks = [await create_task(stub, user, agent, title=f"t{i}", session_id=session if i % 2 else "") for i in range(6)]
    ids = [t.task_id for t in tasks]
    await append(stub, user, ids[1], message("bump"))  # t1 becomes the most recently active
    pin = runtime_pb2.UpdateTaskRequest(
        task=task_pb2.Task(task_id=ids[4], is_pinned=True), update_mask=field_mask_pb2.FieldMask(paths=["is_pinned"])
    )
    await stub.UpdateTask(pin, metadata=user)
    archive = runtime_pb2.UpdateTaskRequest(
        task=task_pb2.Task(task_id=ids[0], is_archived=True),
        update_mask=field_mask_pb2.FieldMask(paths=["is_archived"]),
    )
    await stub.UpdateTask(archive, metadata=user)
    await stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=ids[5]), metadata=user)  # now the latest activity

    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListTasks(runtime_pb2.ListTasksRequest(page_size=2, page_token=token), metadata=user)
        seen += [t.task_id for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert seen == [ids[4], ids[5], ids[1], ids[3], ids[2]]  # archived t0 is hidden

    async def listed(**filters: Any) -> list[str]:
        reply = await stub.ListTasks(runtime_pb2.ListTasksRequest(**filters), metadata=user)
        return [t.task_id for t in reply.tasks]

    assert await listed(archive_filter=runtime_pb2.ARCHIVE_FILTER_ARCHIVED) == [ids[0]]
    assert len(await listed(archive_filter=runtime_pb2.ARCHIVE_FILTER_ALL)) == 6
    assert await listed(statuses=[task_pb2.TASK_STATUS_CANCELLED]) == [ids[5]]
    assert await listed(session_id=session) == [ids[5], ids[1], ids[3]]
    assert await listed(agent_id="someone-else") == []
    # A token is bound to its filters.
    first = await stub.ListTasks(runtime_pb2.ListTasksRequest(page_size=1), metadata=user)
    failure = await rpc_error(
        stub.ListTasks(
            runtime_pb2.ListTasksRequest(page_size=1, page_token=first.next_page_token, agent_id=agent), metadata=user
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_update_changes_only_masked_fields_and_a_stale_etag_is_aborted(
    stub: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent, title="old")
    update = runtime_pb2.UpdateTaskRequest(
        task=task_pb2.Task(task_id=task.task_id, title="new", is_pinned=True, etag=task.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["title"]),
    )
    updated = await stub.UpdateTask(update, metadata=user)
    assert (updated.title, updated.is_pinned) == ("new", False) and updated.etag != task.etag
    failure = await rpc_error(stub.UpdateTask(update, metadata=user))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    bad_mask = runtime_pb2.UpdateTaskRequest(
        task=task_pb2.Task(task_id=task.task_id), update_mask=field_mask_pb2.FieldMask(paths=["status"])
    )
    failure = await rpc_error(stub.UpdateTask(bad_mask, metadata=user))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and failure.fields == {"update_mask"}


async def test_cancelling_a_waiting_task_ends_it_once_with_a_final_event(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    waiting = await stub.RequestInput(
        runtime_pb2.RequestInputRequest(
            task_id=task.task_id, lease_id=claimed.lease.lease_id, question=said("which url?")
        ),
        metadata=worker,
    )
    assert waiting.status == task_pb2.TASK_STATUS_WAITING_INPUT
    request = runtime_pb2.CancelTaskRequest(task_id=task.task_id, reason="changed my mind")
    first, second = await asyncio.gather(
        stub.CancelTask(request, metadata=user), stub.CancelTask(request, metadata=user)
    )
    assert first.status == second.status == task_pb2.TASK_STATUS_CANCELLED
    events = await all_events(stub, user, task.task_id)
    statuses = [e.metadata["status"] for e in events if e.type == task_pb2.EVENT_TYPE_STATUS]
    assert statuses == ["queued", "running", "waiting_input", "cancelled"]
    assert events[-1].metadata["note"] == "changed my mind"
    # Nothing is appended after the final event.
    failure = await rpc_error(append(stub, user, task.task_id, message("late")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TASK_ENDED")


async def test_cancel_works_from_queued_and_running_but_a_finished_task_stays_finished(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    queued = await create_task(stub, user, agent)
    cancelled = await stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=queued.task_id), metadata=user)
    assert cancelled.status == task_pb2.TASK_STATUS_CANCELLED
    running = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    cancelled = await stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=running.task_id), metadata=user)
    assert cancelled.status == task_pb2.TASK_STATUS_CANCELLED
    # The cancelled task's lease is gone: the worker can no longer drive it.
    failure = await rpc_error(append(stub, worker, running.task_id, said("x"), lease_id=claimed.lease.lease_id))
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    done = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    await stub.FinishTask(
        runtime_pb2.FinishTaskRequest(task_id=done.task_id, lease_id=claimed.lease.lease_id), metadata=worker
    )
    failure = await rpc_error(stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=done.task_id), metadata=user))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TASK_ENDED")
