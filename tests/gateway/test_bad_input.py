"""Bad input on the gateway's own fields (DESIGN §5) answers INVALID_ARGUMENT from the gateway,
naming the field, before any service is called; never INTERNAL or UNKNOWN."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf.message import Message

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.protos import MAX_ETAG_CHARS
from nexus.kit.validation import JSON, MAX_JSON_DEPTH, dict_to_struct
from nexus.runtime.v1 import artifact_pb2, task_pb2
from nexus.user.v1 import user_pb2
from tests.deep_json import nested_struct, with_field
from tests.gateway.conftest import Account, Platform
from tests.introspection import (
    assert_health_answers_precisely,
    assert_reflection_answers_precisely,
    buf_curl_list_methods,
)
from tests.support import Tokens, rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub

GOOD_ID = "00000000-0000-4000-8000-000000000000"
NUL = "a\x00b"
LONG_ETAG = 'W/"' + "9" * MAX_ETAG_CHARS + '"'


def nested(depth: int) -> dict[str, JSON]:
    value: dict[str, JSON] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def drain(call: AsyncIterable[Any]) -> None:
    async for _ in call:
        pass


# (method, request, the fields the gateway must name)
CASES: list[tuple[str, Message, set[str]]] = [
    ("SignUp", pb.SignUpRequest(email=NUL, password="x" * 2000, nickname="n" * 300), {"email", "password", "nickname"}),
    ("SignIn", pb.SignInRequest(email="e" * 400, password=NUL), {"email", "password"}),
    ("Refresh", pb.RefreshRequest(refresh_token="t" * 5000), {"refresh_token"}),
    ("SignOut", pb.SignOutRequest(refresh_token=NUL), {"refresh_token"}),
    ("RunCommand", pb.RunCommandRequest(text="", session_id="s", request_id="r"), {"text", "session_id", "request_id"}),
    ("RunCommand", pb.RunCommandRequest(text="/x " + "y" * 9000), {"text"}),
    (
        "StartChat",
        pb.StartChatRequest(agent_id="Bad Agent!", text=NUL, session_id=GOOD_ID + "x"),
        {"agent_id", "text", "session_id"},
    ),
    ("StartChat", pb.StartChatRequest(agent_id="assistant_v1", text="x" * 100_001), {"text"}),
    ("GetTask", pb.GetTaskRequest(task_id="not-a-uuid"), {"task_id"}),
    ("StreamTask", pb.StreamTaskRequest(task_id="", after_seq=-1), {"task_id", "after_seq"}),
    ("SubmitInput", pb.SubmitInputRequest(task_id="1", text=""), {"task_id", "text"}),
    ("CancelTask", pb.CancelTaskRequest(task_id=GOOD_ID, reason="r" * 2001), {"reason"}),
    ("GetSidebar", pb.GetSidebarRequest(recent_page_size=-1), {"recent_page_size"}),
    ("ListAgents", pb.ListAgentsRequest(page_size=-5, page_token="t"), {"page_size"}),
    ("ListAgents", pb.ListAgentsRequest(page_token=NUL), {"page_token"}),
    ("GetAgentSettings", pb.GetAgentSettingsRequest(agent_id=""), {"agent_id"}),
    (
        "ConnectAgent",
        pb.ConnectAgentRequest(
            agent_id="a", provider="", display_name="d" * 201, credentials=dict_to_struct(nested(33)), request_id="x"
        ),
        {"agent_id", "provider", "display_name", "credentials", "request_id"},
    ),
    ("DisconnectAgent", pb.DisconnectAgentRequest(connection_id="c", etag=NUL), {"connection_id", "etag"}),
    # Past the one etag length of every service (kit.protos.MAX_ETAG_CHARS).
    ("DisconnectAgent", pb.DisconnectAgentRequest(connection_id=GOOD_ID, etag=LONG_ETAG), {"etag"}),
    ("UpdateTask", pb.UpdateTaskRequest(task=task_pb2.Task(task_id=GOOD_ID, etag=LONG_ETAG)), {"task.etag"}),
    (
        "UpdateArtifact",
        pb.UpdateArtifactRequest(artifact=artifact_pb2.Artifact(artifact_id=GOOD_ID, etag=LONG_ETAG)),
        {"artifact.etag"},
    ),
    (
        "UpdateProfile",
        pb.UpdateProfileRequest(profile=user_pb2.Profile(nickname="n", etag=LONG_ETAG)),
        {"profile.etag"},
    ),
    ("CompleteCommand", pb.CompleteCommandRequest(prefix="p" * 65), {"prefix"}),
    ("CompleteCommand", pb.CompleteCommandRequest(page_size=-1), {"page_size"}),
    (
        "SearchMemories",
        pb.SearchMemoriesRequest(query=NUL, page_size=-1, page_token="t" * 3000),
        {"query", "page_size", "page_token"},
    ),
    ("SearchMemories", pb.SearchMemoriesRequest(query="q" * 201), {"query"}),
    (
        "ListArtifacts",
        pb.ListArtifactsRequest(task_id="nope", page_size=-1, page_token=NUL),
        {"task_id", "page_size", "page_token"},
    ),
    (
        "CrystallizeSkill",
        pb.CrystallizeSkillRequest(task_id="t", name="", trigger="scan", description=NUL, request_id="r"),
        {"task_id", "name", "trigger", "description", "request_id"},
    ),
]


@pytest.mark.parametrize(("method", "request_", "fields"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_fields_are_invalid_arguments_naming_each_field(
    gw: Stub, alice: Account, method: str, request_: Message, fields: set[str]
) -> None:
    call: Callable[..., Any] = getattr(gw, method)
    attempt: Awaitable[Any] = (
        drain(call(request_, metadata=alice.md)) if method == "StreamTask" else call(request_, metadata=alice.md)
    )
    failure = await rpc_error(attempt)
    assert (failure.code, failure.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "nexus.gateway.v1"), failure
    assert failure.fields == fields


async def test_huge_page_sizes_are_capped_not_refused(gw: Stub, alice: Account) -> None:
    agents = await gw.ListAgents(pb.ListAgentsRequest(page_size=2**31 - 1), metadata=alice.md)
    assert len(agents.agents) <= 1000
    await gw.GetSidebar(pb.GetSidebarRequest(recent_page_size=10**9), metadata=alice.md)
    await gw.CompleteCommand(pb.CompleteCommandRequest(page_size=10**9), metadata=alice.md)


async def test_lone_surrogates_on_the_wire_are_invalid_arguments(
    platform: Platform, alice: Account, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    raw = open_channel(platform.gateway.address).unary_unary(
        "/nexus.gateway.v1.GatewayService/StartChat",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    body = (
        pb.StartChatRequest(agent_id="assistant_v1", text="XXXX").SerializeToString().replace(b"XXXX", b"\xed\xa0\x80x")
    )
    failure = await rpc_error(raw(body, metadata=alice.md))
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_REQUEST",
        {"text"},
    )
    credentials = pb.ConnectAgentRequest(credentials=dict_to_struct({"YYYY": "v"})).SerializeToString()
    raw_connect = open_channel(platform.gateway.address).unary_unary(
        "/nexus.gateway.v1.GatewayService/ConnectAgent",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    failure = await rpc_error(raw_connect(credentials.replace(b"YYYY", b"\xed\xb0\x80z"), metadata=alice.md))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert next(iter(failure.fields)).startswith("credentials")


async def test_health_and_reflection_answer_hostile_calls_precisely(
    platform: Platform, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    channel = open_channel(platform.gateway.address)
    await assert_health_answers_precisely(channel, platform.gateway.definition.service_names)
    await assert_reflection_answers_precisely(channel, platform.gateway.definition.service_names)


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
async def test_buf_curl_finds_every_method_by_reflection(platform: Platform, protocol: str) -> None:
    methods = await asyncio.to_thread(buf_curl_list_methods, platform.gateway.address, protocol)
    assert {"nexus.gateway.v1.GatewayService/GetSidebar", "grpc.health.v1.Health/List"} <= set(methods)


@pytest.mark.parametrize("depth", [33, 34, 100, 5000])
async def test_credentials_nested_too_deep_name_the_field(
    platform: Platform, alice: Account, open_channel: Callable[[str], grpc.aio.Channel], depth: int
) -> None:
    raw = open_channel(platform.gateway.address).unary_unary(
        "/nexus.gateway.v1.GatewayService/ConnectAgent",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    request = pb.ConnectAgentRequest(agent_id="assistant_v1", provider="notion", display_name="n")
    failure = await rpc_error(raw(with_field(request, "credentials", nested_struct(depth)), metadata=alice.md))
    assert (failure.code, failure.reason, failure.domain) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "nexus.gateway.v1",
    )
    assert [(v.field, v.description) for v in failure.violations] == [
        ("credentials", f"is nested deeper than {MAX_JSON_DEPTH} levels")
    ]


# A valid request for every gateway method that needs a token (the four account calls are public).
USER_CALLS: dict[str, Message] = {
    "GetMe": pb.GetMeRequest(),
    "RunCommand": pb.RunCommandRequest(text="/scan https://acme.com"),
    "StartChat": pb.StartChatRequest(agent_id="assistant_v1", text="hi"),
    "GetTask": pb.GetTaskRequest(task_id=GOOD_ID),
    "StreamTask": pb.StreamTaskRequest(task_id=GOOD_ID),
    "SubmitInput": pb.SubmitInputRequest(task_id=GOOD_ID, text="yes"),
    "CancelTask": pb.CancelTaskRequest(task_id=GOOD_ID),
    "GetSidebar": pb.GetSidebarRequest(),
    "ListArtifacts": pb.ListArtifactsRequest(),
    "ListAgents": pb.ListAgentsRequest(),
    "GetAgentSettings": pb.GetAgentSettingsRequest(agent_id="assistant_v1"),
    "ConnectAgent": pb.ConnectAgentRequest(
        agent_id="assistant_v1", provider="notion", display_name="n", credentials=dict_to_struct({"k": "v"})
    ),
    "DisconnectAgent": pb.DisconnectAgentRequest(connection_id=GOOD_ID),
    "CompleteCommand": pb.CompleteCommandRequest(prefix="/s"),
    "CrystallizeSkill": pb.CrystallizeSkillRequest(task_id=GOOD_ID, name="n"),
    "SearchMemories": pb.SearchMemoriesRequest(query="q"),
    "UpdateProfile": pb.UpdateProfileRequest(profile=user_pb2.Profile(nickname="n")),
    "ListTasks": pb.ListTasksRequest(),
    "UpdateTask": pb.UpdateTaskRequest(task=task_pb2.Task(task_id=GOOD_ID, is_pinned=True)),
    "CreateStreamTicket": pb.CreateStreamTicketRequest(task_id=GOOD_ID),
    "DownloadArtifact": pb.DownloadArtifactRequest(artifact_id=GOOD_ID),
    "UpdateArtifact": pb.UpdateArtifactRequest(artifact=artifact_pb2.Artifact(artifact_id=GOOD_ID, is_pinned=True)),
    "ListSessions": pb.ListSessionsRequest(),
    "CreateSession": pb.CreateSessionRequest(title="t"),
    "VerifyConnection": pb.VerifyConnectionRequest(connection_id=GOOD_ID),
}
STREAMS = {"StreamTask", "DownloadArtifact"}


async def test_an_operator_token_is_told_the_gateway_needs_a_users_token(gw: Stub, tokens: Tokens) -> None:
    public = {"SignUp", "SignIn", "Refresh", "SignOut"}
    assert set(USER_CALLS) == set(pb.DESCRIPTOR.services_by_name["GatewayService"].methods_by_name) - public
    operator = tokens.service("runtime.worker", "ontology.admin", "user.admin", name="operator")
    for method, request_ in USER_CALLS.items():
        call: Callable[..., Any] = getattr(gw, method)
        attempt = drain(call(request_, metadata=operator)) if method in STREAMS else call(request_, metadata=operator)
        failure = await rpc_error(attempt)
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED"), method
        assert "user's access token" in failure.message and "scope" not in failure.message, method
