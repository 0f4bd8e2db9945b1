"""Etags have one length limit on every service (kit.protos.MAX_ETAG_CHARS): a longer one
cannot be any the services issued, so every runtime write that takes one refuses it as
malformed (INVALID_ARGUMENT naming the field) instead of answering that it is stale."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.kit.protos import MAX_ETAG_CHARS
from nexus.runtime.v1 import (
    artifact_pb2,
    runtime_pb2,
    schedule_pb2,
    session_pb2,
    task_pb2,
    workspace_pb2,
)
from tests.runtime.conftest import Metadata, create_session, create_task, upload
from tests.runtime.test_schedules import new_schedule
from tests.support import rpc_error

LONG = 'W/"' + "9" * (MAX_ETAG_CHARS - 3) + '"'  # one past the limit
TITLE = field_mask_pb2.FieldMask(paths=["title"])


async def test_an_etag_past_the_one_length_limit_is_invalid_in_every_runtime_write(
    stub: Any,
    sessions: Any,
    workspace: Any,
    artifacts: Any,
    schedules: Any,
    owner: tuple[str, Metadata],
    agent: str,
) -> None:
    _, user = owner
    assert len(LONG) == MAX_ETAG_CHARS + 1
    task_id = (await create_task(stub, user, agent)).task_id
    session_id = await create_session(sessions, user)
    artifact_id = (await upload(artifacts, user, task_id, b"bytes")).artifact_id
    schedule_id = (await schedules.CreateSchedule(new_schedule(agent), metadata=user)).schedule_id
    writes: list[tuple[Callable[[], Any], str]] = [
        (
            lambda: stub.UpdateTask(
                runtime_pb2.UpdateTaskRequest(
                    task=task_pb2.Task(task_id=task_id, title="t", etag=LONG), update_mask=TITLE
                ),
                metadata=user,
            ),
            "task.etag",
        ),
        (
            lambda: sessions.UpdateSession(
                session_pb2.UpdateSessionRequest(
                    session=session_pb2.Session(session_id=session_id, title="t", etag=LONG), update_mask=TITLE
                ),
                metadata=user,
            ),
            "session.etag",
        ),
        (
            lambda: sessions.DeleteSession(
                session_pb2.DeleteSessionRequest(session_id=session_id, etag=LONG), metadata=user
            ),
            "etag",
        ),
        (
            lambda: workspace.SetTaskPlan(workspace_pb2.SetTaskPlanRequest(task_id=task_id, etag=LONG), metadata=user),
            "etag",
        ),
        (
            lambda: workspace.UpdatePlanStep(
                workspace_pb2.UpdatePlanStepRequest(
                    task_id=task_id, step_id="a", status=workspace_pb2.PLAN_STEP_STATUS_DONE, etag=LONG
                ),
                metadata=user,
            ),
            "etag",
        ),
        (
            lambda: workspace.PatchTaskContext(
                workspace_pb2.PatchTaskContextRequest(task_id=task_id, etag=LONG), metadata=user
            ),
            "etag",
        ),
        (
            lambda: workspace.PutTaskMemory(
                workspace_pb2.PutTaskMemoryRequest(memory=workspace_pb2.TaskMemory(task_id=task_id, etag=LONG)),
                metadata=user,
            ),
            "memory.etag",
        ),
        (
            lambda: artifacts.UpdateArtifact(
                artifact_pb2.UpdateArtifactRequest(
                    artifact=artifact_pb2.Artifact(artifact_id=artifact_id, display_name="d", etag=LONG),
                    update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                ),
                metadata=user,
            ),
            "artifact.etag",
        ),
        (
            lambda: artifacts.DeleteArtifact(
                artifact_pb2.DeleteArtifactRequest(artifact_id=artifact_id, etag=LONG), metadata=user
            ),
            "etag",
        ),
    ]
    for method, message in (
        (schedules.PauseSchedule, schedule_pb2.PauseScheduleRequest),
        (schedules.ResumeSchedule, schedule_pb2.ResumeScheduleRequest),
        (schedules.DeleteSchedule, schedule_pb2.DeleteScheduleRequest),
    ):
        writes.append((partial(method, message(schedule_id=schedule_id, etag=LONG), metadata=user), "etag"))
    for write, field in writes:
        failure = await rpc_error(write())
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {field}), field
    # A stale etag within the limit is what it always was: ABORTED.
    stale = await rpc_error(
        stub.UpdateTask(
            runtime_pb2.UpdateTaskRequest(
                task=task_pb2.Task(task_id=task_id, title="t", etag='W/"0"'), update_mask=TITLE
            ),
            metadata=user,
        )
    )
    assert (stale.code, stale.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
