"""A page token is opaque, not secret: anyone can make one that decodes (its fingerprint is a
digest of the request). One whose cursor no list produces, such as a time past year 9999 or a
seq past 64 bits, is the one INVALID_PAGE_TOKEN (kit.paging), never INTERNAL."""

from __future__ import annotations

from typing import Any

import grpc

from nexus.kit import paging
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, schedule_pb2, session_pb2
from tests.runtime.conftest import Metadata, create_task
from tests.support import Tokens, rpc_error

GOOD_ID = "00000000-0000-4000-8000-000000000000"
# Microseconds since 1970 far past year 9999, yet below 2**62.
FAR_FUTURE_US = 2**61


def forged(values: paging.Cursor, *query: object) -> str:
    return paging.encode(values, paging.query_fingerprint(*query))


async def test_forged_tokens_with_cursors_no_list_produces_are_invalid_page_tokens(
    stub: Any, sessions: Any, schedules: Any, artifacts: Any, tokens: Tokens, agent: str
) -> None:
    user_id, user = tokens.user()
    task_id = (await create_task(stub, user, agent)).task_id
    calls: list[Any] = [
        stub.ListTasks(
            runtime_pb2.ListTasksRequest(
                page_token=forged([False, FAR_FUTURE_US, GOOD_ID], "tasks", user_id, (), False, None, None)
            ),
            metadata=user,
        ),
        stub.ListTaskEvents(
            runtime_pb2.ListTaskEventsRequest(task_id=task_id, page_token=forged([2**70], "events", task_id, 0, 0)),
            metadata=user,
        ),
        sessions.ListSessions(
            session_pb2.ListSessionsRequest(page_token=forged([FAR_FUTURE_US, GOOD_ID], "sessions", user_id)),
            metadata=user,
        ),
        schedules.ListSchedules(
            schedule_pb2.ListSchedulesRequest(page_token=forged([FAR_FUTURE_US, GOOD_ID], "schedules", user_id)),
            metadata=user,
        ),
        artifacts.ListArtifacts(
            artifact_pb2.ListArtifactsRequest(
                page_token=forged([True, FAR_FUTURE_US, GOOD_ID], "artifacts", user_id, None, False, None)
            ),
            metadata=user,
        ),
    ]
    for i, call in enumerate(calls):
        failure = await rpc_error(call)
        assert (failure.code, failure.reason, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
            {"page_token"},
        ), (i, failure)


async def test_a_token_made_the_way_the_lists_make_theirs_is_accepted(
    stub: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    """The forgeries above fail for their values, not their form: the same recipe with cursors a
    list could produce continues that list."""
    user_id, user = owner
    task = await create_task(stub, user, agent)
    events = await stub.ListTaskEvents(
        runtime_pb2.ListTaskEventsRequest(task_id=task.task_id, page_token=forged([0], "events", task.task_id, 0, 0)),
        metadata=user,
    )
    assert [e.seq for e in events.events] == [1]
    # After a pinned task of 1970: every unpinned task follows.
    after_pinned = forged([True, 0, GOOD_ID], "tasks", user_id, (), False, agent, None)
    tasks = await stub.ListTasks(runtime_pb2.ListTasksRequest(agent_id=agent, page_token=after_pinned), metadata=user)
    assert [t.task_id for t in tasks.tasks] == [task.task_id]
