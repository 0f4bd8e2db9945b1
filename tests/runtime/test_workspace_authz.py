"""Object-level authorization of the workspace: another user's sessions, plans, contexts,
memories, artifacts and schedules answer NOT_FOUND, exactly like missing ones."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.runtime.v1 import artifact_pb2, schedule_pb2, session_pb2, workspace_pb2
from tests.runtime.conftest import Metadata, create_session, create_task, upload
from tests.runtime.test_plan import SCAN
from tests.runtime.test_schedules import new_schedule
from tests.support import Tokens, rpc_error

MISSING = "00000000-0000-4000-8000-000000000000"


async def drain(call: Any) -> None:
    async for _ in call:
        pass


async def test_another_users_workspace_is_not_found_everywhere(
    stub: Any,
    sessions: Any,
    workspace: Any,
    artifacts: Any,
    schedules: Any,
    owner: tuple[str, Metadata],
    tokens: Tokens,
    agent: str,
) -> None:
    _, user = owner
    _, stranger = tokens.user()
    session_id = await create_session(sessions, user)
    task = await create_task(stub, user, agent, session_id=session_id)
    tid = task.task_id
    await workspace.SetTaskPlan(workspace_pb2.SetTaskPlanRequest(task_id=tid, steps=SCAN), metadata=user)
    artifact = await upload(artifacts, user, tid, b"secret bytes")
    schedule = await schedules.CreateSchedule(new_schedule(agent), metadata=user)

    session_calls = [
        sessions.GetSession(session_pb2.GetSessionRequest(session_id=session_id), metadata=stranger),
        sessions.UpdateSession(
            session_pb2.UpdateSessionRequest(
                session=session_pb2.Session(session_id=session_id, title="mine"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=stranger,
        ),
        sessions.DeleteSession(session_pb2.DeleteSessionRequest(session_id=session_id, force=True), metadata=stranger),
    ]
    memory = workspace_pb2.TaskMemory(task_id=tid, summary_text="mine")
    task_calls = [
        workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=tid), metadata=stranger),
        workspace.SetTaskPlan(workspace_pb2.SetTaskPlanRequest(task_id=tid, steps=SCAN), metadata=stranger),
        workspace.UpdatePlanStep(
            workspace_pb2.UpdatePlanStepRequest(
                task_id=tid, step_id="fetch", status=workspace_pb2.PLAN_STEP_STATUS_SKIPPED
            ),
            metadata=stranger,
        ),
        workspace.GetTaskContext(workspace_pb2.GetTaskContextRequest(task_id=tid), metadata=stranger),
        workspace.PatchTaskContext(workspace_pb2.PatchTaskContextRequest(task_id=tid), metadata=stranger),
        workspace.GetTaskMemory(workspace_pb2.GetTaskMemoryRequest(task_id=tid), metadata=stranger),
        workspace.PutTaskMemory(workspace_pb2.PutTaskMemoryRequest(memory=memory), metadata=stranger),
        artifacts.ListArtifacts(artifact_pb2.ListArtifactsRequest(task_id=tid), metadata=stranger),
        upload(artifacts, stranger, tid, b"planted"),
    ]
    aid = artifact.artifact_id
    artifact_calls = [
        artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(artifact_id=aid), metadata=stranger),
        drain(artifacts.DownloadArtifact(artifact_pb2.DownloadArtifactRequest(artifact_id=aid), metadata=stranger)),
        artifacts.UpdateArtifact(
            artifact_pb2.UpdateArtifactRequest(
                artifact=artifact_pb2.Artifact(artifact_id=aid, is_pinned=True),
                update_mask=field_mask_pb2.FieldMask(paths=["is_pinned"]),
            ),
            metadata=stranger,
        ),
        artifacts.DeleteArtifact(artifact_pb2.DeleteArtifactRequest(artifact_id=aid), metadata=stranger),
    ]
    sid = schedule.schedule_id
    schedule_calls = [
        schedules.GetSchedule(schedule_pb2.GetScheduleRequest(schedule_id=sid), metadata=stranger),
        schedules.PauseSchedule(schedule_pb2.PauseScheduleRequest(schedule_id=sid), metadata=stranger),
        schedules.ResumeSchedule(schedule_pb2.ResumeScheduleRequest(schedule_id=sid), metadata=stranger),
        schedules.DeleteSchedule(schedule_pb2.DeleteScheduleRequest(schedule_id=sid), metadata=stranger),
    ]
    for calls, reason in (
        (session_calls, "SESSION_NOT_FOUND"),
        (task_calls, "TASK_NOT_FOUND"),
        (artifact_calls, "ARTIFACT_NOT_FOUND"),
        (schedule_calls, "SCHEDULE_NOT_FOUND"),
    ):
        for call in calls:
            failure = await rpc_error(call)
            assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, reason), failure
    # Exactly as missing ones.
    for call, reason in (
        (sessions.GetSession(session_pb2.GetSessionRequest(session_id=MISSING), metadata=user), "SESSION_NOT_FOUND"),
        (workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=MISSING), metadata=user), "TASK_NOT_FOUND"),
        (
            artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(artifact_id=MISSING), metadata=user),
            "ARTIFACT_NOT_FOUND",
        ),
        (
            schedules.GetSchedule(schedule_pb2.GetScheduleRequest(schedule_id=MISSING), metadata=user),
            "SCHEDULE_NOT_FOUND",
        ),
    ):
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, reason)
    # Lists and searches across the caller's objects show nothing of the owner's.
    assert list((await sessions.ListSessions(session_pb2.ListSessionsRequest(), metadata=stranger)).sessions) == []
    assert list((await artifacts.ListArtifacts(artifact_pb2.ListArtifactsRequest(), metadata=stranger)).artifacts) == []
    assert list((await schedules.ListSchedules(schedule_pb2.ListSchedulesRequest(), metadata=stranger)).schedules) == []
    await workspace.PutTaskMemory(workspace_pb2.PutTaskMemoryRequest(memory=memory), metadata=user)
    searched = await workspace.SearchTaskMemories(
        workspace_pb2.SearchTaskMemoriesRequest(query="mine"), metadata=stranger
    )
    assert list(searched.results) == []
    # Nothing the stranger tried changed anything.
    plan = await workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=tid), metadata=user)
    assert [s.status for s in plan.steps] == [workspace_pb2.PLAN_STEP_STATUS_PENDING] * 3
    assert (
        await artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(artifact_id=aid), metadata=user)
    ).is_pinned is False
    kept = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(schedule_id=sid), metadata=user)
    assert kept.state == schedule_pb2.SCHEDULE_STATE_ACTIVE


async def test_user_only_calls_refuse_service_tokens_and_workers_need_their_scope(
    stub: Any, sessions: Any, workspace: Any, schedules: Any, owner: tuple[str, Metadata], tokens: Tokens, agent: str
) -> None:
    _, user = owner
    worker = tokens.service("runtime.worker")
    for call in (
        sessions.ListSessions(session_pb2.ListSessionsRequest(), metadata=worker),
        schedules.CreateSchedule(new_schedule(agent), metadata=worker),
        workspace.SearchTaskMemories(workspace_pb2.SearchTaskMemoriesRequest(query="x"), metadata=worker),
    ):
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")
    task = await create_task(stub, user, agent)
    unscoped = tokens.service("user.connections.reveal", name="not-a-worker")
    failure = await rpc_error(
        workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=task.task_id), metadata=unscoped)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
