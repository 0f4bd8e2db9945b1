"""Bad input to the workspace services (DESIGN §5) answers INVALID_ARGUMENT naming the field,
never INTERNAL or UNKNOWN: NUL characters and lone surrogates (in JSON keys and values too),
JSON too deep or too large, oversized text, bad page sizes, malformed ids, unknown enums."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from nexus.runtime.v1 import (
    artifact_pb2,
    schedule_pb2,
    session_pb2,
    workspace_pb2,
)
from tests.runtime.conftest import Metadata, create_task
from tests.runtime.test_bad_input import UNKNOWN, nested
from tests.runtime.test_schedules import new_schedule
from tests.support import rpc_error

BIG = "x" * (1024 * 1024 + 1)
GOOD = "00000000-0000-4000-8000-000000000000"


def session_with(title: str = "t", config: dict[str, Any] | None = None) -> session_pb2.CreateSessionRequest:
    request = session_pb2.CreateSessionRequest(session=session_pb2.Session(title=title))
    request.session.config.update(config or {})
    return request


def plan_with(task_id: str, **step: Any) -> workspace_pb2.SetTaskPlanRequest:
    args = step.pop("args", {})
    fields = {"step_id": "a", "title": "t", "action": "noop", **step}
    request = workspace_pb2.SetTaskPlanRequest(task_id=task_id, steps=[workspace_pb2.PlanStep(**fields)])
    request.steps[0].args.update(args)
    return request


def context_with(task_id: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    request = workspace_pb2.PatchTaskContextRequest(task_id=task_id, **kw)
    if variables is not None:
        request.variables_patch.update(variables)
    return request


def memory_with(task_id: str, **fields: Any) -> workspace_pb2.PutTaskMemoryRequest:
    return workspace_pb2.PutTaskMemoryRequest(memory=workspace_pb2.TaskMemory(task_id=task_id, **fields))


def header_with(task_id: str, meta: dict[str, Any] | None = None, **fields: Any) -> Any:
    artifact = artifact_pb2.Artifact(
        **{"task_id": task_id, "type": "pdf", "display_name": "d", "size_bytes": 1, "sha256": "a" * 64, **fields}
    )
    artifact.meta_data.update(meta or {})

    async def messages() -> Any:
        yield artifact_pb2.CreateArtifactRequest(header=artifact_pb2.ArtifactHeader(artifact=artifact))

    return messages()


def schedule_with(**fields: Any) -> schedule_pb2.CreateScheduleRequest:
    inputs = fields.pop("inputs", None)
    request = new_schedule("scanner", **{k: v for k, v in fields.items() if k not in ("cron",)}, inputs=inputs or {})
    if "cron" in fields:
        request.schedule.cron = fields["cron"]
    return request


S, W, A, C = "sessions", "workspace", "artifacts", "schedules"

CASES: dict[str, tuple[str, Callable[[Any, str, Metadata], Any], str]] = {
    # sessions
    "nul in session title": (S, lambda s, t, m: s.CreateSession(session_with("a\x00"), metadata=m), "session.title"),
    "long session title": (S, lambda s, t, m: s.CreateSession(session_with("x" * 501), metadata=m), "session.title"),
    "nul in config key": (
        S,
        lambda s, t, m: s.CreateSession(session_with(config={"\x00": 1}), metadata=m),
        "session.config",
    ),
    "deep config": (S, lambda s, t, m: s.CreateSession(session_with(config=nested(33)), metadata=m), "session.config"),
    "large config": (S, lambda s, t, m: s.CreateSession(session_with(config={"s": BIG}), metadata=m), "session.config"),
    "malformed session id": (
        S,
        lambda s, t, m: s.GetSession(session_pb2.GetSessionRequest(session_id="s1"), metadata=m),
        "session_id",
    ),
    "malformed request id": (
        S,
        lambda s, t, m: s.CreateSession(session_pb2.CreateSessionRequest(request_id="r"), metadata=m),
        "request_id",
    ),
    "negative sessions page": (
        S,
        lambda s, t, m: s.ListSessions(session_pb2.ListSessionsRequest(page_size=-1), metadata=m),
        "page_size",
    ),
    "bad sessions token": (
        S,
        lambda s, t, m: s.ListSessions(session_pb2.ListSessionsRequest(page_token="nope"), metadata=m),
        "page_token",
    ),
    # plan
    "nul in step title": (W, lambda s, t, m: s.SetTaskPlan(plan_with(t, title="\x00"), metadata=m), "steps[0].title"),
    "long step title": (W, lambda s, t, m: s.SetTaskPlan(plan_with(t, title="x" * 501), metadata=m), "steps[0].title"),
    "bad step id": (W, lambda s, t, m: s.SetTaskPlan(plan_with(t, step_id="a b"), metadata=m), "steps[0].step_id"),
    "missing action": (W, lambda s, t, m: s.SetTaskPlan(plan_with(t, action=""), metadata=m), "steps[0].action"),
    "nul in args key": (W, lambda s, t, m: s.SetTaskPlan(plan_with(t, args={"k\x00": 1}), metadata=m), "steps[0].args"),
    "deep args": (W, lambda s, t, m: s.SetTaskPlan(plan_with(t, args=nested(33)), metadata=m), "steps[0].args"),
    "unknown step status": (
        W,
        lambda s, t, m: s.SetTaskPlan(plan_with(t, status=UNKNOWN), metadata=m),
        "steps[0].status",
    ),
    "too many steps": (
        W,
        lambda s, t, m: s.SetTaskPlan(
            workspace_pb2.SetTaskPlanRequest(
                task_id=t, steps=[workspace_pb2.PlanStep(step_id=f"s{i}", action="a") for i in range(257)]
            ),
            metadata=m,
        ),
        "steps",
    ),
    "unknown update status": (
        W,
        lambda s, t, m: s.UpdatePlanStep(
            workspace_pb2.UpdatePlanStepRequest(task_id=t, step_id="a", status=UNKNOWN), metadata=m
        ),
        "status",
    ),
    "missing update status": (
        W,
        lambda s, t, m: s.UpdatePlanStep(workspace_pb2.UpdatePlanStepRequest(task_id=t, step_id="a"), metadata=m),
        "status",
    ),
    "malformed plan task id": (
        W,
        lambda s, t, m: s.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id="t"), metadata=m),
        "task_id",
    ),
    "owner sends a lease": (
        W,
        lambda s, t, m: s.SetTaskPlan(
            plan_with(t, lease_id=GOOD) if False else workspace_pb2.SetTaskPlanRequest(task_id=t, lease_id=GOOD),
            metadata=m,
        ),
        "lease_id",
    ),
    # context
    "nul in variables value": (
        W,
        lambda s, t, m: s.PatchTaskContext(context_with(t, {"a": ["\x00"]}), metadata=m),
        "variables_patch",
    ),
    "deep variables": (
        W,
        lambda s, t, m: s.PatchTaskContext(context_with(t, nested(33)), metadata=m),
        "variables_patch",
    ),
    "large variables": (
        W,
        lambda s, t, m: s.PatchTaskContext(context_with(t, {"s": BIG}), metadata=m),
        "variables_patch",
    ),
    "malformed active file": (
        W,
        lambda s, t, m: s.PatchTaskContext(context_with(t, add_active_files=["f1"]), metadata=m),
        "add_active_files[0]",
    ),
    # memory
    "nul in summary": (
        W,
        lambda s, t, m: s.PutTaskMemory(memory_with(t, summary_text="\x00"), metadata=m),
        "memory.summary_text",
    ),
    "long summary": (
        W,
        lambda s, t, m: s.PutTaskMemory(memory_with(t, summary_text="x" * 20_001), metadata=m),
        "memory.summary_text",
    ),
    "nul in takeaway": (
        W,
        lambda s, t, m: s.PutTaskMemory(memory_with(t, key_takeaways=["ok", "\x00"]), metadata=m),
        "memory.key_takeaways[1]",
    ),
    "nul in query": (
        W,
        lambda s, t, m: s.SearchTaskMemories(workspace_pb2.SearchTaskMemoriesRequest(query="\x00"), metadata=m),
        "query",
    ),
    "long query": (
        W,
        lambda s, t, m: s.SearchTaskMemories(workspace_pb2.SearchTaskMemoriesRequest(query="x" * 201), metadata=m),
        "query",
    ),
    "blank query": (
        W,
        lambda s, t, m: s.SearchTaskMemories(workspace_pb2.SearchTaskMemoriesRequest(query=" "), metadata=m),
        "query",
    ),
    "negative search page": (
        W,
        lambda s, t, m: s.SearchTaskMemories(
            workspace_pb2.SearchTaskMemoriesRequest(query="q", page_size=-5), metadata=m
        ),
        "page_size",
    ),
    # artifacts
    "nul in display name": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, display_name="\x00"), metadata=m),
        "header.artifact.display_name",
    ),
    "long display name": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, display_name="x" * 501), metadata=m),
        "header.artifact.display_name",
    ),
    "bad artifact type": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, type="Bad Type"), metadata=m),
        "header.artifact.type",
    ),
    "bad content type": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, content_type="png"), metadata=m),
        "header.artifact.content_type",
    ),
    "bad sha256": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, sha256="ABC"), metadata=m),
        "header.artifact.sha256",
    ),
    "negative size": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, size_bytes=-1), metadata=m),
        "header.artifact.size_bytes",
    ),
    "nul in meta key": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, {"\x00": 1}), metadata=m),
        "header.artifact.meta_data",
    ),
    "deep meta": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with(t, nested(33)), metadata=m),
        "header.artifact.meta_data",
    ),
    "malformed artifact task id": (
        A,
        lambda s, t, m: s.CreateArtifact(header_with("t"), metadata=m),
        "header.artifact.task_id",
    ),
    "malformed artifact id": (
        A,
        lambda s, t, m: s.GetArtifact(artifact_pb2.GetArtifactRequest(artifact_id="a"), metadata=m),
        "artifact_id",
    ),
    "unknown archive filter": (
        A,
        lambda s, t, m: s.ListArtifacts(artifact_pb2.ListArtifactsRequest(archive_filter=UNKNOWN), metadata=m),
        "archive_filter",
    ),
    "negative artifacts page": (
        A,
        lambda s, t, m: s.ListArtifacts(artifact_pb2.ListArtifactsRequest(page_size=-1), metadata=m),
        "page_size",
    ),
    "negative read offset": (
        A,
        lambda s, t, m: s.DownloadArtifact(
            artifact_pb2.DownloadArtifactRequest(artifact_id=GOOD, read_offset=-1), metadata=m
        ),
        "read_offset",
    ),
    # schedules
    "nul in cron": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(cron="* * * * *\x00"), metadata=m),
        "schedule.cron",
    ),
    "long cron": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(cron="1," * 101 + " * * * *"), metadata=m),
        "schedule.cron",
    ),
    "nul in time zone": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(time_zone="UTC\x00"), metadata=m),
        "schedule.time_zone",
    ),
    "path as time zone": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(time_zone="../../etc/passwd"), metadata=m),
        "schedule.time_zone",
    ),
    "long title": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(title="x" * 501), metadata=m),
        "schedule.command.title",
    ),
    "nul in inputs key": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(inputs={"\x00": 1}), metadata=m),
        "schedule.command.inputs",
    ),
    "large inputs": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(inputs={"s": BIG}), metadata=m),
        "schedule.command.inputs",
    ),
    "malformed team id": (
        C,
        lambda s, t, m: s.CreateSchedule(schedule_with(team_id="t"), metadata=m),
        "schedule.command.team_id",
    ),
    "malformed agent id": (
        C,
        lambda s, t, m: s.CreateSchedule(new_schedule("Not An Agent"), metadata=m),
        "schedule.command.agent_id",
    ),
    "malformed schedule id": (
        C,
        lambda s, t, m: s.PauseSchedule(schedule_pb2.PauseScheduleRequest(schedule_id="s"), metadata=m),
        "schedule_id",
    ),
    "negative schedules page": (
        C,
        lambda s, t, m: s.ListSchedules(schedule_pb2.ListSchedulesRequest(page_size=-(2**31)), metadata=m),
        "page_size",
    ),
}


async def _call(call: Any) -> Any:
    if hasattr(call, "__aiter__"):
        async for _ in call:
            pass
        return None
    return await call


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_workspace_requests_are_invalid_arguments_naming_the_field(
    stub: Any,
    sessions: Any,
    workspace: Any,
    artifacts: Any,
    schedules: Any,
    owner: tuple[str, Metadata],
    agent: str,
    case: str,
) -> None:
    _, user = owner
    service, make, field = CASES[case]
    target = {S: sessions, W: workspace, A: artifacts, C: schedules}[service]
    task_id = (await create_task(stub, user, agent)).task_id
    failure = await rpc_error(_call(make(target, task_id, user)))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure
    assert field in failure.fields, failure.fields
    assert "\x00" not in failure.message


async def test_huge_page_sizes_are_capped(
    sessions: Any, workspace: Any, artifacts: Any, schedules: Any, owner: tuple[str, Metadata]
) -> None:
    _, user = owner
    huge = 2**31 - 1
    await sessions.ListSessions(session_pb2.ListSessionsRequest(page_size=huge), metadata=user)
    await artifacts.ListArtifacts(artifact_pb2.ListArtifactsRequest(page_size=huge), metadata=user)
    await schedules.ListSchedules(schedule_pb2.ListSchedulesRequest(page_size=huge), metadata=user)
    await workspace.SearchTaskMemories(
        workspace_pb2.SearchTaskMemoriesRequest(query="q", page_size=huge), metadata=user
    )


RAW = {
    "/nexus.runtime.v1.SessionService/CreateSession": (session_with(title="XXXX"), "session.title"),
    "/nexus.runtime.v1.SessionService/UpdateSession": (
        session_pb2.UpdateSessionRequest(session=session_pb2.Session(title="XXXX")),
        "session.title",
    ),
    "/nexus.runtime.v1.ScheduleService/CreateSchedule": (schedule_with(cron="XXXX"), "schedule.cron"),
    "/nexus.runtime.v1.WorkspaceService/SearchTaskMemories": (
        workspace_pb2.SearchTaskMemoriesRequest(query="XXXX"),
        "query",
    ),
}


@pytest.mark.parametrize("method", list(RAW))
async def test_lone_surrogates_on_the_wire_are_invalid_arguments(
    runtime: Any, open_channel: Any, owner: tuple[str, Metadata], method: str
) -> None:
    request, field = RAW[method]
    raw = open_channel(runtime.address).unary_unary(method, request_serializer=lambda b: b, response_deserializer=bytes)
    body = request.SerializeToString().replace(b"XXXX", b"\xed\xa0\x80x")
    failure = await rpc_error(raw(body, metadata=owner[1]))
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_REQUEST",
        {field},
    )


async def test_lone_surrogates_inside_json_keys_and_values_and_in_a_client_stream(
    stub: Any, runtime: Any, open_channel: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    channel = open_channel(runtime.address)
    task_id = (await create_task(stub, user, agent)).task_id
    patch = channel.unary_unary(
        "/nexus.runtime.v1.WorkspaceService/PatchTaskContext",
        request_serializer=lambda b: b,
        response_deserializer=bytes,
    )
    for marker in (b"YYYY", b"ZZZZ"):
        body = context_with(task_id, {"YYYY": "ZZZZ"}).SerializeToString().replace(marker, b"\xed\xb0\x80z")
        failure = await rpc_error(patch(body, metadata=user))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
        assert next(iter(failure.fields)).startswith("variables_patch")
    upload = channel.stream_unary(
        "/nexus.runtime.v1.ArtifactService/CreateArtifact", request_serializer=lambda b: b, response_deserializer=bytes
    )
    header = artifact_pb2.CreateArtifactRequest(
        header=artifact_pb2.ArtifactHeader(
            artifact=artifact_pb2.Artifact(
                task_id=task_id, type="pdf", display_name="WWWW", size_bytes=1, sha256="a" * 64
            )
        )
    )

    async def messages() -> Any:
        yield header.SerializeToString().replace(b"WWWW", b"\xed\xa0\x80w")

    failure = await rpc_error(upload(messages(), metadata=user))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"header.artifact.display_name"})
