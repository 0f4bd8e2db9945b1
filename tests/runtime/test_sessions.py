"""Sessions (seed 000): the caller's standard methods, tasks by session, and deleting a session
that still has tasks."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.runtime.v1 import runtime_pb2, session_pb2
from tests.runtime.conftest import Metadata, all_events, create_session, create_task
from tests.support import Tokens, rpc_error


async def test_create_get_update_and_list_the_callers_sessions(sessions: Any, tokens: Tokens) -> None:
    user_id, user = tokens.user()
    request = session_pb2.CreateSessionRequest(
        session=session_pb2.Session(title="Research"), request_id=str(uuid.uuid4())
    )
    request.session.config.update({"model": "large", "temperature": 0.2})
    created = await sessions.CreateSession(request, metadata=user)
    assert (created.user_id, created.title, created.config["model"]) == (user_id, "Research", "large")
    assert (await sessions.CreateSession(request, metadata=user)).session_id == created.session_id  # idempotent
    got = await sessions.GetSession(session_pb2.GetSessionRequest(session_id=created.session_id), metadata=user)
    assert got == created

    update = session_pb2.UpdateSessionRequest(
        session=session_pb2.Session(session_id=created.session_id, title="Renamed", etag=created.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["title"]),
    )
    updated = await sessions.UpdateSession(update, metadata=user)
    assert (updated.title, updated.config["model"]) == ("Renamed", "large") and updated.etag != created.etag
    failure = await rpc_error(sessions.UpdateSession(update, metadata=user))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")

    others = [await create_session(sessions, user, f"s{i}") for i in range(3)]
    seen: list[str] = []
    token = ""
    while True:
        page = await sessions.ListSessions(
            session_pb2.ListSessionsRequest(page_size=2, page_token=token), metadata=user
        )
        seen += [s.session_id for s in page.sessions]
        token = page.next_page_token
        if not token:
            break
    # Most recently updated first: the three new ones, newest first, then the renamed one.
    assert seen == [*reversed(others), created.session_id]


async def test_tasks_are_listed_by_session_and_the_session_moves_up(
    stub: Any, sessions: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    first = await create_session(sessions, user, "first")
    second = await create_session(sessions, user, "second")
    in_first = [await create_task(stub, user, agent, session_id=first) for _ in range(2)]
    await create_task(stub, user, agent, session_id=second)
    listed = await stub.ListTasks(runtime_pb2.ListTasksRequest(session_id=first), metadata=user)
    assert {t.task_id for t in listed.tasks} == {t.task_id for t in in_first}
    await create_task(stub, user, agent, session_id=first)  # a new task makes the session recent again
    page = await sessions.ListSessions(session_pb2.ListSessionsRequest(page_size=1), metadata=user)
    assert [s.session_id for s in page.sessions] == [first]


async def test_a_task_cannot_join_a_session_that_is_not_the_callers(
    stub: Any, sessions: Any, tokens: Tokens, agent: str
) -> None:
    _, alice = tokens.user()
    _, bob = tokens.user()
    alices = await create_session(sessions, alice)
    for session_id in (alices, str(uuid.uuid4())):
        failure = await rpc_error(create_task(stub, bob, agent, session_id=session_id))
        assert (failure.code, failure.reason, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "SESSION_NOT_FOUND",
            {"task.session_id"},
        )


async def test_deleting_a_session_with_tasks_needs_force_and_then_archives_them(
    stub: Any, sessions: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    session_id = await create_session(sessions, user)
    tasks = [await create_task(stub, user, agent, session_id=session_id) for _ in range(2)]
    failure = await rpc_error(
        sessions.DeleteSession(session_pb2.DeleteSessionRequest(session_id=session_id), metadata=user)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SESSION_HAS_TASKS")
    await sessions.DeleteSession(session_pb2.DeleteSessionRequest(session_id=session_id, force=True), metadata=user)
    failure = await rpc_error(sessions.GetSession(session_pb2.GetSessionRequest(session_id=session_id), metadata=user))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
    for task in tasks:
        kept = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user)
        assert (kept.is_archived, kept.session_id, kept.status) == (True, "", task.status)
        assert len(await all_events(stub, user, task.task_id)) == 1  # not lost
    archived = await stub.ListTasks(
        runtime_pb2.ListTasksRequest(agent_id=agent, archive_filter=runtime_pb2.ARCHIVE_FILTER_ARCHIVED), metadata=user
    )
    assert {t.task_id for t in archived.tasks} == {t.task_id for t in tasks}
    # An empty session needs no force.
    empty = await create_session(sessions, user)
    await sessions.DeleteSession(session_pb2.DeleteSessionRequest(session_id=empty), metadata=user)
