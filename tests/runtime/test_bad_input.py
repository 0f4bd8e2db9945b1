"""Bad input (DESIGN §5) answers INVALID_ARGUMENT naming the field, never INTERNAL or UNKNOWN."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from nexus.kit.server import NexusServer
from nexus.kit.validation import JSON, MAX_JSON_DEPTH
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, session_pb2, task_pb2, workspace_pb2
from tests.deep_json import nested_struct, with_field
from tests.introspection import (
    assert_health_answers_precisely,
    assert_reflection_answers_precisely,
    buf_curl_list_methods,
)
from tests.runtime.conftest import Metadata, append, claim_one, create_task, message
from tests.runtime.test_schedules import new_schedule
from tests.support import RpcFailure, Tokens, rpc_error

GOOD_ID = "00000000-0000-4000-8000-000000000000"
UNKNOWN: Any = 77  # an enum number the proto does not define (proto3 enums are open)


def nested(depth: int) -> dict[str, JSON]:
    value: dict[str, JSON] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def event_with(**changes: Any) -> task_pb2.TaskEvent:
    event = message("x")
    for name, value in changes.items():
        if isinstance(value, dict):
            getattr(event, name).update(value)
        else:
            setattr(event, name, value)
    return event


def create_with(**changes: Any) -> runtime_pb2.CreateTaskRequest:
    request = runtime_pb2.CreateTaskRequest(
        task=task_pb2.Task(agent_id="scanner", trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title="t")
    )
    for name, value in changes.items():
        if name == "request_id":
            request.request_id = value
        elif name == "inputs":
            request.task.inputs.update(value)
        else:
            setattr(request.task, name, value)
    return request


CREATE_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "nul in title": ({"title": "a\x00b"}, "task.title"),
    "oversized title": ({"title": "x" * 501}, "task.title"),
    "blank title": ({"title": "  "}, "task.title"),
    "malformed agent id": ({"agent_id": "Not A Slug!"}, "task.agent_id"),
    "malformed team id": ({"team_id": "team-1"}, "task.team_id"),
    "malformed session id": ({"session_id": "123"}, "task.session_id"),
    "malformed skill id": ({"origin_skill_id": "-x"}, "task.origin_skill_id"),
    "malformed request id": ({"request_id": "abc"}, "request_id"),
    "unknown trigger source": ({"trigger_source": 99}, "task.trigger_source"),
    "missing trigger source": ({"trigger_source": 0}, "task.trigger_source"),
    "nul inside json value": ({"inputs": {"k": ["ok", "a\x00"]}}, "task.inputs"),
    "nul inside json key": ({"inputs": {"k\x00": 1}}, "task.inputs"),
    "json too deep": ({"inputs": nested(33)}, "task.inputs"),
    "json too large": ({"inputs": {"s": "x" * (1024 * 1024 + 1)}}, "task.inputs"),
}


@pytest.mark.parametrize("case", list(CREATE_CASES))
async def test_bad_create_requests_are_invalid_arguments_naming_the_field(
    stub: Any, owner: tuple[str, Metadata], case: str
) -> None:
    changes, field = CREATE_CASES[case]
    failure = await rpc_error(stub.CreateTask(create_with(**changes), metadata=owner[1]))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure
    assert field in failure.fields
    assert "\x00" not in failure.message


EVENT_CASES: dict[str, tuple[Callable[[], list[task_pb2.TaskEvent]], str]] = {
    "nul in content": (lambda: [event_with(content_text="a\x00")], "events[0].content_text"),
    "oversized content": (lambda: [event_with(content_text="x" * (1024 * 1024 + 1))], "events[0].content_text"),
    "nul in metadata value": (lambda: [event_with(metadata={"a": {"b": "\x00"}})], "events[0].metadata"),
    "nul in metadata key": (lambda: [event_with(metadata={"\x00": 1})], "events[0].metadata"),
    "deep render payload": (
        lambda: [event_with(type=task_pb2.EVENT_TYPE_NEXUS_RENDER, render_payload=nested(33))],
        "events[0].render_payload",
    ),
    "unknown role": (lambda: [event_with(role=42)], "events[0].role"),
    "unknown type": (lambda: [event_with(type=42)], "events[0].type"),
    "missing role": (lambda: [event_with(role=0)], "events[0].role"),
    "status is system-only": (lambda: [event_with(type=task_pb2.EVENT_TYPE_STATUS)], "events[0].type"),
    "nul in client key": (lambda: [event_with(client_key="k\x00")], "events[0].client_key"),
    "long client key": (lambda: [event_with(client_key="k" * 129)], "events[0].client_key"),
    "duplicate keys in a batch": (lambda: [event_with(client_key="k"), event_with(client_key="k")], "events"),
    "empty batch": (lambda: [], "events"),
    "too many events": (lambda: [message("x") for _ in range(501)], "events"),
    "batch over 4 MiB": (lambda: [message("x" * 900_000) for _ in range(5)], "events"),
}


@pytest.mark.parametrize("case", list(EVENT_CASES))
async def test_bad_appends_are_invalid_arguments_and_write_nothing(
    stub: Any, owner: tuple[str, Metadata], agent: str, case: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    make, field = EVENT_CASES[case]
    failure = await rpc_error(append(stub, user, task.task_id, *make()))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure
    assert field in failure.fields
    reread = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user)
    assert reread.last_seq == 1


async def test_lone_surrogates_on_the_wire_are_invalid_arguments(
    stub: Any, owner: tuple[str, Metadata], runtime: Any, open_channel: Any
) -> None:
    _, user = owner
    raw = open_channel(runtime.address).unary_unary(
        "/nexus.runtime.v1.RuntimeService/CreateTask",
        request_serializer=lambda b: b,
        response_deserializer=task_pb2.Task.FromString,
    )
    body = create_with(title="XXXX").SerializeToString().replace(b"XXXX", b"\xed\xa0\x80x")
    failure = await rpc_error(raw(body, metadata=user))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert failure.fields == {"task.title"}
    # Inside a Struct key or value too.
    request = create_with(inputs={"YYYY": "ZZZZ"})
    for marker in (b"YYYY", b"ZZZZ"):
        body = request.SerializeToString().replace(marker, b"\xed\xb0\x80z")
        failure = await rpc_error(raw(body, metadata=user))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
        assert failure.fields and next(iter(failure.fields)).startswith("task.inputs")


async def test_non_finite_numbers_in_json_are_invalid(stub: Any, owner: tuple[str, Metadata], agent: str) -> None:
    _, user = owner
    request = create_with(agent_id=agent)
    request.task.inputs.fields["n"].CopyFrom(struct_pb2.Value(number_value=float("nan")))
    failure = await rpc_error(stub.CreateTask(request, metadata=user))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and failure.fields == {"task.inputs"}


@pytest.mark.parametrize("page_size", [-1, -(2**31)])
async def test_negative_page_sizes_are_invalid_and_huge_ones_are_capped(
    stub: Any, owner: tuple[str, Metadata], agent: str, page_size: int
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    for call in (
        stub.ListTasks(runtime_pb2.ListTasksRequest(page_size=page_size), metadata=user),
        stub.ListTaskEvents(
            runtime_pb2.ListTaskEventsRequest(task_id=task.task_id, page_size=page_size), metadata=user
        ),
    ):
        failure = await rpc_error(call)
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in failure.fields
    huge = await stub.ListTasks(runtime_pb2.ListTasksRequest(page_size=2**31 - 1), metadata=user)
    assert len(huge.tasks) >= 1
    huge_events = await stub.ListTaskEvents(
        runtime_pb2.ListTaskEventsRequest(task_id=task.task_id, page_size=2**31 - 1), metadata=user
    )
    assert len(huge_events.events) == 1


async def test_malformed_ids_tokens_enums_ranges_and_leases_are_invalid(
    stub: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    worker = None
    task = await create_task(stub, user, agent)
    tid = task.task_id
    cases: list[tuple[Any, str]] = [
        (stub.GetTask(runtime_pb2.GetTaskRequest(task_id="nope"), metadata=user), "task_id"),
        (stub.GetTask(runtime_pb2.GetTaskRequest(task_id=""), metadata=user), "task_id"),
        (stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id="1; DROP TABLE"), metadata=user), "task_id"),
        (stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=tid, reason="\x00"), metadata=user), "reason"),
        (stub.ListTasks(runtime_pb2.ListTasksRequest(page_token="garbage!"), metadata=user), "page_token"),
        (stub.ListTasks(runtime_pb2.ListTasksRequest(statuses=[UNKNOWN]), metadata=user), "statuses[0]"),
        (stub.ListTasks(runtime_pb2.ListTasksRequest(archive_filter=UNKNOWN), metadata=user), "archive_filter"),
        (stub.ListTasks(runtime_pb2.ListTasksRequest(session_id="x"), metadata=user), "session_id"),
        (stub.ListTaskEvents(runtime_pb2.ListTaskEventsRequest(task_id=tid, after_seq=-1), metadata=user), "after_seq"),
        (
            stub.ListTaskEvents(runtime_pb2.ListTaskEventsRequest(task_id=tid, page_token="e30"), metadata=user),
            "page_token",
        ),
        (
            stub.StreamTaskEvents(runtime_pb2.StreamTaskEventsRequest(task_id=tid, after_seq=-5), metadata=user),
            "after_seq",
        ),
        (append(stub, user, tid, message("x"), lease_id=GOOD_ID), "lease_id"),
    ]
    for call, field in cases:
        failure = await rpc_error(_unary_or_stream(call))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, (field, failure)
        assert field in failure.fields, (field, failure.fields)
    assert worker is None


async def test_bad_worker_requests_are_invalid(stub: Any, worker: Metadata, agent: str) -> None:
    def claim(**fields: Any) -> Any:
        request = runtime_pb2.ClaimTasksRequest(**{"agent_ids": [agent], "max_tasks": 1, **fields})
        return stub.ClaimTasks(request, metadata=worker)

    too_long = runtime_pb2.ClaimTasksRequest(agent_ids=[agent], max_tasks=1)
    too_long.lease_duration.FromSeconds(7200)
    cases: list[tuple[Any, str]] = [
        (claim(agent_ids=[]), "agent_ids"),
        (claim(agent_ids=["BAD ID"]), "agent_ids[0]"),
        (claim(max_tasks=0), "max_tasks"),
        (claim(max_tasks=-3), "max_tasks"),
        (claim(max_tasks=10_000), "max_tasks"),
        (stub.ClaimTasks(too_long, metadata=worker), "lease_duration"),
        (append(stub, worker, GOOD_ID, message("x")), "lease_id"),
        (stub.RenewLease(runtime_pb2.RenewLeaseRequest(task_id=GOOD_ID, lease_id="x"), metadata=worker), "lease_id"),
        (
            stub.FailTask(runtime_pb2.FailTaskRequest(task_id=GOOD_ID, lease_id=GOOD_ID), metadata=worker),
            "error.reason",
        ),
        (
            stub.RequestInput(
                runtime_pb2.RequestInputRequest(task_id=GOOD_ID, lease_id=GOOD_ID, question=message("as user")),
                metadata=worker,
            ),
            "question.role",
        ),
    ]
    for call, field in cases:
        failure = await rpc_error(call)
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, (field, failure)
        assert field in failure.fields, (field, failure.fields)


async def _unary_or_stream(call: Any) -> Any:
    if hasattr(call, "__aiter__"):
        async for _ in call:
            pass
        return None
    return await call


async def test_health_and_reflection_answer_hostile_calls_precisely(
    runtime: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    channel = open_channel(runtime.address)
    await assert_health_answers_precisely(channel, runtime.definition.service_names)
    await assert_reflection_answers_precisely(channel, runtime.definition.service_names)


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
async def test_buf_curl_finds_every_method_by_reflection(runtime: NexusServer, protocol: str) -> None:
    methods = await asyncio.to_thread(buf_curl_list_methods, runtime.address, protocol)
    assert {"nexus.runtime.v1.SessionService/ListSessions", "grpc.health.v1.Health/List"} <= set(methods)


DEEP = f"is nested deeper than {MAX_JSON_DEPTH} levels"


def _artifact_header(task_id: str) -> artifact_pb2.CreateArtifactRequest:
    artifact = artifact_pb2.Artifact(task_id=task_id, type="pdf", display_name="d", size_bytes=1, sha256="a" * 64)
    return artifact_pb2.CreateArtifactRequest(header=artifact_pb2.ArtifactHeader(artifact=artifact))


# (service/method, request for a task id, JSON field, whether the client streams)
DEEP_FIELDS: list[tuple[str, Callable[[str], Message], str, bool]] = [
    ("ScheduleService/CreateSchedule", lambda t: new_schedule("scanner", inputs={}), "schedule.command.inputs", False),
    ("ArtifactService/CreateArtifact", _artifact_header, "header.artifact.meta_data", True),
    ("RuntimeService/CreateTask", lambda t: create_with(), "task.inputs", False),
    (
        "RuntimeService/AppendTaskEvents",
        lambda t: runtime_pb2.AppendTaskEventsRequest(task_id=t, events=[message("x")]),
        "events[0].metadata",
        False,
    ),
    ("SessionService/CreateSession", lambda t: session_pb2.CreateSessionRequest(), "session.config", False),
    (
        "WorkspaceService/SetTaskPlan",
        lambda t: workspace_pb2.SetTaskPlanRequest(
            task_id=t, steps=[workspace_pb2.PlanStep(step_id="a", title="t", action="noop")]
        ),
        "steps[0].args",
        False,
    ),
]


@pytest.mark.parametrize("depth", [33, 34, 100, 5000])
@pytest.mark.parametrize(("method", "build", "field", "streaming"), DEEP_FIELDS, ids=[c[2] for c in DEEP_FIELDS])
async def test_json_nested_too_deep_anywhere_names_its_field(
    stub: Any,
    runtime: NexusServer,
    open_channel: Callable[[str], grpc.aio.Channel],
    owner: tuple[str, Metadata],
    agent: str,
    method: str,
    build: Callable[[str], Message],
    field: str,
    streaming: bool,
    depth: int,
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    body = with_field(build(task.task_id), field, nested_struct(depth))
    channel = open_channel(runtime.address)
    path = f"/nexus.runtime.v1.{method}"
    if streaming:
        call = channel.stream_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        failure = await rpc_error(call(iter([body]), metadata=user))
    else:
        unary = channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        failure = await rpc_error(unary(body, metadata=user))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [(v.field, v.description) for v in failure.violations] == [(field, DEEP)]
    assert f"{field}: {DEEP}" in failure.message


def _described(failure: RpcFailure, field: str) -> str:
    return next(v.description for v in failure.violations if v.field == field)


async def test_a_missing_event_type_or_role_lists_only_what_the_caller_may_send(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    failure = await rpc_error(append(stub, user, task.task_id, event_with(type=0, role=0)))
    callers_types = "EVENT_TYPE_MESSAGE, EVENT_TYPE_NEXUS_RENDER, EVENT_TYPE_TOOL_USE, EVENT_TYPE_TOOL_RESULT"
    assert _described(failure, "events[0].type") == f"is required; one of {callers_types}"
    assert _described(failure, "events[0].role") == "is required; one of EVENT_ROLE_USER"
    unknown = await rpc_error(append(stub, user, task.task_id, event_with(type=UNKNOWN)))
    assert "STATUS" not in _described(unknown, "events[0].type")
    assert "PLAN" not in _described(unknown, "events[0].type")

    claimed = await claim_one(stub, worker, agent)
    failure = await rpc_error(
        append(stub, worker, claimed.task.task_id, event_with(role=0), lease_id=claimed.lease.lease_id)
    )
    assert (
        _described(failure, "events[0].role")
        == "is required; one of EVENT_ROLE_ASSISTANT, EVENT_ROLE_SYSTEM, EVENT_ROLE_TOOL"
    )


async def test_a_service_token_without_the_worker_scope_is_told_a_users_token_works_too(
    stub: Any, owner: tuple[str, Metadata], tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    unscoped = tokens.service("user.admin", name="operator")
    for call in (
        stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=unscoped),
        stub.ListTaskEvents(runtime_pb2.ListTaskEventsRequest(task_id=task.task_id), metadata=unscoped),
        append(stub, unscoped, task.task_id, message("x"), lease_id=GOOD_ID),
    ):
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
        assert failure.message == "this call needs a user's access token or a service token with scope 'runtime.worker'"
