"""A2A's edges: bad input gets INVALID_PARAMS naming the field (never INTERNAL or UNKNOWN) on
both bindings, the JSON-RPC envelope's own errors, authentication and the protocol version,
the agent cards (public platform card, caching, an agent's card read as the caller), the log
lines, and shutdown ending open streams with UNAVAILABLE."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import grpc
import httpx
import pytest
from a2a.client.card_resolver import parse_agent_card
from a2a.types import a2a_pb2 as a2a
from a2a.types import a2a_pb2_grpc as a2a_grpc
from google.protobuf import json_format

from launch.registry import GATEWAY
from nexus.kit.auth import bearer_metadata
from nexus.kit.config import Settings
from nexus.kit.logs import JsonFormatter
from nexus.kit.server import running
from tests.gateway.a2a_support import agent_of, user_message
from tests.gateway.conftest import Account, Platform, Scan, Worker, upload_artifact
from tests.support import Tokens, rpc_error

A2A_DOMAIN = "a2a-protocol.org"
V1 = (("a2a-version", "1.0"),)


def stub(platform: Platform, open_channel: Any) -> Any:
    return a2a_grpc.A2AServiceStub(open_channel(platform.gateway.address))  # type: ignore[no-untyped-call]


def md(account: Account, **extra: str) -> tuple[tuple[str, str], ...]:
    return (*bearer_metadata(account.tokens.access_token), *V1, *extra.items())


def http_base(platform: Platform) -> str:
    assert platform.gateway.http is not None
    return f"http://{platform.gateway.http.address}"


async def jsonrpc(
    platform: Platform,
    body: Any,
    *,
    token: str | None = None,
    version: str | None = "1.0",
    headers: Mapping[str, str] = {},
) -> httpx.Response:
    sent = {"content-type": "application/json", **headers}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    if version is not None:
        sent["a2a-version"] = version
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(http_base(platform) + "/a2a/v1", content=data, headers=sent)


def call(method: str, params: Any, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def fields_of(error: Mapping[str, Any]) -> set[str]:
    return {
        violation["field"]
        for detail in error.get("data", [])
        if detail["@type"].endswith("google.rpc.BadRequest")
        for violation in detail["fieldViolations"]
    }


def info_of(error: Mapping[str, Any]) -> dict[str, Any]:
    return next(d for d in error.get("data", []) if d["@type"].endswith("google.rpc.ErrorInfo"))


def send_params(message: a2a.Message) -> dict[str, Any]:
    return json_format.MessageToDict(a2a.SendMessageRequest(message=message))


# -- bad input, both bindings ---------------------------------------------------------------------


def bad_messages(scan: Scan) -> list[tuple[str, a2a.SendMessageRequest, str]]:
    """(what, request, the field it must name)."""
    agent = a2a.Message(message_id="m1", role=a2a.ROLE_AGENT, parts=[a2a.Part(text="hi")])
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(33):
        node["x"] = {}
        node = node["x"]
    with_deep = user_message("hi")
    with_deep.metadata.update(deep)
    return [
        ("no message", a2a.SendMessageRequest(), "message"),
        ("no message id", a2a.SendMessageRequest(message=user_message("hi", message_id=" ")), "message.message_id"),
        ("a NUL", a2a.SendMessageRequest(message=user_message("a\x00b")), "message.parts[0].text"),
        ("an agent's role", a2a.SendMessageRequest(message=agent), "message.role"),
        ("no parts", a2a.SendMessageRequest(message=a2a.Message(message_id="m", role=a2a.ROLE_USER)), "message.parts"),
        (
            "a task id too long",
            a2a.SendMessageRequest(message=user_message("hi", task_id="x" * 201)),
            "message.task_id",
        ),
        ("a bad context", a2a.SendMessageRequest(message=user_message("hi", context_id="x")), "message.context_id"),
        ("deep metadata", a2a.SendMessageRequest(message=with_deep), "message.metadata"),
        ("a bad tenant", a2a.SendMessageRequest(message=user_message("hi"), tenant="Not A Slug"), "tenant"),
        ("plain text, no agent", a2a.SendMessageRequest(message=user_message("hello")), "tenant"),
        ("an unknown command", a2a.SendMessageRequest(message=user_message("/no_such_command_x")), "message.parts"),
        (
            "another user's context",
            a2a.SendMessageRequest(message=user_message(f"{scan.trigger} https://a.b", context_id=str(uuid.uuid4()))),
            "message.context_id",
        ),
    ]


async def test_bad_messages_are_invalid_params_naming_the_field_over_grpc(
    platform: Platform, open_channel: Any, alice: Account, scan: Scan
) -> None:
    a2a_stub = stub(platform, open_channel)
    for what, request, field in bad_messages(scan):
        failure = await rpc_error(a2a_stub.SendMessage(request, metadata=md(alice)))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, (what, failure)
        if what != "deep metadata":  # past protobuf's own depth limit: the kit's decode guard answers
            assert (failure.domain, failure.reason) == (A2A_DOMAIN, "INVALID_PARAMS"), (what, failure)
        assert field in failure.fields, (what, failure.fields)
        assert "\x00" not in failure.message


async def test_bad_messages_are_invalid_params_naming_the_field_over_jsonrpc(
    platform: Platform, alice: Account, scan: Scan
) -> None:
    for what, request, field in bad_messages(scan):
        params = json_format.MessageToDict(request)
        reply = await jsonrpc(platform, call("SendMessage", params), token=alice.tokens.access_token)
        assert reply.status_code == 200
        error = reply.json()["error"]
        assert error["code"] == -32602, (what, error)
        assert field in fields_of(error), (what, error)
        assert info_of(error)["domain"] == A2A_DOMAIN


async def test_a_file_part_is_content_type_not_supported(platform: Platform, open_channel: Any, alice: Account) -> None:
    message = a2a.Message(message_id="m", role=a2a.ROLE_USER, parts=[a2a.Part(url="https://x/y.png")])
    failure = await rpc_error(
        stub(platform, open_channel).SendMessage(a2a.SendMessageRequest(message=message), metadata=md(alice))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CONTENT_TYPE_NOT_SUPPORTED")
    reply = await jsonrpc(platform, call("SendMessage", send_params(message)), token=alice.tokens.access_token)
    assert reply.json()["error"]["code"] == -32005


async def test_bad_task_requests_name_their_fields(platform: Platform, open_channel: Any, alice: Account) -> None:
    a2a_stub = stub(platform, open_channel)
    cases: list[tuple[Any, Any, str]] = [
        (a2a_stub.GetTask, a2a.GetTaskRequest(id="a\x00b"), "id"),
        (a2a_stub.GetTask, a2a.GetTaskRequest(id=str(uuid.uuid4()), history_length=-1), "history_length"),
        (a2a_stub.CancelTask, a2a.CancelTaskRequest(), "id"),
        (a2a_stub.ListTasks, a2a.ListTasksRequest(page_size=0), "page_size"),
        (a2a_stub.ListTasks, a2a.ListTasksRequest(page_size=101), "page_size"),
        (a2a_stub.ListTasks, a2a.ListTasksRequest(status=99), "status"),  # type: ignore[arg-type]
        (a2a_stub.ListTasks, a2a.ListTasksRequest(context_id="x" * 201), "context_id"),
        (a2a_stub.ListTasks, a2a.ListTasksRequest(page_token="garbage"), "page_token"),
        (a2a_stub.GetExtendedAgentCard, a2a.GetExtendedAgentCardRequest(tenant="a\x00"), "tenant"),
    ]
    for method, request, field in cases:
        failure = await rpc_error(method(request, metadata=md(alice)))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, (request, failure)
        assert field in failure.fields, (request, failure.fields)
    # A2A's ids are opaque: one that is no Nexus id names no task (and no context), like an unknown one.
    for method, request in [
        (a2a_stub.GetTask, a2a.GetTaskRequest(id="nope")),
        (a2a_stub.CancelTask, a2a.CancelTaskRequest(id="nope")),
        (a2a_stub.SendMessage, a2a.SendMessageRequest(message=user_message("hi", task_id="nope"))),
    ]:
        failure = await rpc_error(method(request, metadata=md(alice)))
        assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND"), request
    empty = await a2a_stub.ListTasks(a2a.ListTasksRequest(context_id="ctx-of-another-client"), metadata=md(alice))
    assert not empty.tasks and empty.next_page_token == ""
    resume = stub(platform, open_channel).SubscribeToTask(
        a2a.SubscribeToTaskRequest(id=str(uuid.uuid4())), metadata=md(alice, **{"nexus-after-seq": "soon"})
    )
    failure = await rpc_error(_drain(resume))
    assert failure.fields == {"Nexus-After-Seq"}


async def test_resuming_past_the_last_event_is_invalid(
    platform: Platform, open_channel: Any, alice: Account, scan: Scan
) -> None:
    a2a_stub = stub(platform, open_channel)
    request = a2a.SendMessageRequest(
        message=user_message(f"{scan.trigger} https://acme.com"),
        configuration=a2a.SendMessageConfiguration(return_immediately=True),
    )
    sent = await a2a_stub.SendMessage(request, metadata=md(alice))
    resume = a2a_stub.SubscribeToTask(
        a2a.SubscribeToTaskRequest(id=sent.task.id), metadata=md(alice, **{"nexus-after-seq": "999"})
    )
    failure = await rpc_error(_drain(resume))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"Nexus-After-Seq"})


async def test_a_command_of_another_agent_is_refused_through_an_agents_tenant(
    platform: Platform, open_channel: Any, alice: Account, scan: Scan, catalog: Any
) -> None:
    other = await catalog.agent()
    request = a2a.SendMessageRequest(message=user_message(f"{scan.trigger} https://acme.com"), tenant=other)
    failure = await rpc_error(stub(platform, open_channel).SendMessage(request, metadata=md(alice)))
    assert (failure.reason, failure.fields) == ("INVALID_PARAMS", {"message.parts"})


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


async def _read_all(call: Any) -> None:
    while await call.read() != grpc.aio.EOF:
        pass


# -- the JSON-RPC envelope ------------------------------------------------------------------------


async def test_the_jsonrpc_envelope_answers_its_own_error_codes(platform: Platform, alice: Account) -> None:
    token = alice.tokens.access_token
    get = {"id": str(uuid.uuid4())}
    cases: list[tuple[Any, int]] = [
        (b"{not json", -32700),
        (b"\xff\xfe", -32700),
        (b"[" * 100_000, -32700),
        ([call("GetTask", get)], -32600),
        ({**call("GetTask", get), "jsonrpc": "1.0"}, -32600),
        ({**call("GetTask", get), "id": True}, -32600),
        ({**call("GetTask", get), "id": 1.5}, -32600),
        ({"jsonrpc": "2.0", "id": 1}, -32600),
        (call("message/send", {}), -32601),  # A2A 0.3's names (LangGraph's) are not 1.0's
        (call("GetTask", [1, 2]), -32602),
        (call("GetTask", {"id": 5}), -32602),
        (call("SendMessage", {"message": {"parts": "x"}}), -32602),
        (call("GetTask", {"id": "\ud800"}), -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"\\ud800"}}', -32602),
        (call("SendMessage", {"message": {"messageId": "m", "role": "ROLE_USER", "metadata": _deep(40)}}), -32602),
        (call("ListTasks", {"status": "TASK_STATE_DONE"}), -32602),
        (call("SendMessage", {"message": {"messageId": "m", "role": "ROLE_ROBOT", "parts": [{"text": "x"}]}}), -32602),
    ]
    for body, code in cases:
        reply = await jsonrpc(platform, body, token=token)
        assert reply.status_code == 200, (body, reply.text)
        answer = reply.json()
        assert answer["jsonrpc"] == "2.0" and answer["error"]["code"] == code, (str(body)[:80], answer)


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return root


async def test_a_jsonrpc_answer_echoes_its_id(platform: Platform, alice: Account) -> None:
    for request_id in ("abc", 7, None):
        reply = await jsonrpc(
            platform, call("GetTask", {"id": str(uuid.uuid4())}, request_id), token=alice.tokens.access_token
        )
        assert reply.json()["id"] == request_id
        assert reply.json()["error"]["code"] == -32001  # TaskNotFound


async def test_a_body_over_the_message_limit_is_refused_unread(platform: Platform, settings: Settings) -> None:
    reply = await jsonrpc(platform, b" " * (settings.max_message_bytes + 1))
    assert reply.json()["error"]["code"] == -32600


# -- who may call, which version ------------------------------------------------------------------


async def test_no_token_is_unauthenticated_and_a_service_token_is_refused(
    platform: Platform, open_channel: Any, tokens: Tokens
) -> None:
    a2a_stub = stub(platform, open_channel)
    request = a2a.GetTaskRequest(id=str(uuid.uuid4()))
    failure = await rpc_error(a2a_stub.GetTask(request, metadata=V1))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    service = (*tokens.service("runtime.worker"), *V1)
    failure = await rpc_error(a2a_stub.GetTask(request, metadata=service))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")

    reply = await jsonrpc(platform, call("GetTask", {"id": request.id}))
    assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json()["error"]["code"] == -32000
    assert info_of(reply.json()["error"])["reason"] == "TOKEN_MISSING"
    reply = await jsonrpc(platform, call("GetTask", {"id": request.id}), token="not-a-jwt")
    assert reply.status_code == 401


async def test_a2a_version_1_is_served_and_an_empty_or_other_one_is_refused(
    platform: Platform, open_channel: Any, alice: Account
) -> None:
    a2a_stub = stub(platform, open_channel)
    request = a2a.GetTaskRequest(id=str(uuid.uuid4()))
    token = bearer_metadata(alice.tokens.access_token)
    for version in (None, "0.3", "2.0", "x"):
        sent = token if version is None else (*token, ("a2a-version", version))
        failure = await rpc_error(a2a_stub.GetTask(request, metadata=sent))
        assert (failure.code, failure.reason, failure.domain) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "VERSION_NOT_SUPPORTED",
            A2A_DOMAIN,
        ), version
        reply = await jsonrpc(
            platform, call("GetTask", {"id": request.id}), token=alice.tokens.access_token, version=version
        )
        assert reply.json()["error"]["code"] == -32009, version
    for version in ("1.0", "1.0.2", "1"):
        failure = await rpc_error(a2a_stub.GetTask(request, metadata=(*token, ("a2a-version", version))))
        assert failure.reason == "TASK_NOT_FOUND", version


# -- cards ----------------------------------------------------------------------------------------


async def test_the_platform_card_is_public_and_cached_by_its_etag(platform: Platform, settings: Settings) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.get(http_base(platform) + "/.well-known/agent-card.json")
        assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
        card = parse_agent_card(reply.json())
        assert {(i.protocol_binding, i.url) for i in card.supported_interfaces} == {
            ("JSONRPC", http_base(platform).replace("127.0.0.1", settings.host) + "/a2a/v1"),
            ("GRPC", f"{settings.host}:{settings.port('gateway')}"),
        }
        assert card.capabilities.streaming and card.capabilities.extended_agent_card
        assert not card.capabilities.push_notifications
        assert [e.uri for e in card.capabilities.extensions] == ["urn:nexus:a2a:event-seq:v1"]
        assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
        assert list(card.security_requirements[0].schemes) == ["bearer"]
        assert card.skills, "a card holds at least one skill"
        beside = await client.get(http_base(platform) + "/a2a/v1/.well-known/agent-card.json")
        assert beside.json() == reply.json(), "also beside the JSON-RPC endpoint"
        etag = reply.headers["etag"]
        again = await client.get(http_base(platform) + "/.well-known/agent-card.json", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""


async def test_an_agents_card_is_read_as_the_caller(platform: Platform, alice: Account, scan: Scan) -> None:
    url = f"{http_base(platform)}/a2a/agents/{scan.agent_id}/.well-known/agent-card.json"
    async with httpx.AsyncClient(timeout=30) as client:
        refused = await client.get(url)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        auth = {"authorization": f"Bearer {alice.tokens.access_token}"}
        reply = await client.get(url, headers=auth)
        assert reply.status_code == 200, reply.text
        card = parse_agent_card(reply.json())
        assert {i.tenant for i in card.supported_interfaces} == {scan.agent_id}
        assert [s.id for s in card.skills] == ["chat", scan.skill.id]
        missing = await client.get(
            f"{http_base(platform)}/a2a/agents/no_such_agent_x/.well-known/agent-card.json", headers=auth
        )
        assert missing.status_code == 404
        bad = await client.get(f"{http_base(platform)}/a2a/agents/Bad%20Id/.well-known/agent-card.json", headers=auth)
        assert bad.status_code == 400


# -- logs and shutdown ----------------------------------------------------------------------------


async def test_jsonrpc_calls_log_one_line_each_and_never_the_token(
    platform: Platform, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await jsonrpc(platform, call("GetTask", {"id": str(uuid.uuid4())}), token=alice.tokens.access_token)
    await jsonrpc(platform, call("GetTask", {"id": "bad\u0000"}), token=alice.tokens.access_token)
    lines = [r for r in caplog.records if r.name == "nexus.rpc" and r.rpc.get("protocol") == "jsonrpc"]  # type: ignore[attr-defined]
    assert [(r.rpc["method"], r.rpc["code"]) for r in lines] == [  # type: ignore[attr-defined]
        ("/lf.a2a.v1.A2AService/GetTask", "NOT_FOUND"),
        ("/lf.a2a.v1.A2AService/GetTask", "INVALID_ARGUMENT"),
    ]
    written = "\n".join(JsonFormatter().format(r) for r in caplog.records if r.name.startswith("nexus"))
    assert alice.tokens.access_token not in written


async def _open_stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], token: str
) -> AsyncIterator[dict[str, Any]]:
    headers = {"authorization": f"Bearer {token}", "a2a-version": "1.0", "content-type": "application/json"}
    async with client.stream("POST", url, content=json.dumps(body), headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                yield {"event": event or "message", **json.loads(line.removeprefix("data:"))}
                event = ""


async def test_shutdown_ends_open_a2a_streams_with_unavailable(
    settings: Settings, alice: Account, scan: Scan, worker: Worker
) -> None:
    async with running(GATEWAY, settings, port=0) as replica:
        assert replica.http is not None
        channel = grpc.aio.insecure_channel(replica.address)
        a2a_stub = a2a_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]
        request = a2a.SendMessageRequest(
            message=user_message(f"{scan.trigger} https://acme.com"),
            configuration=a2a.SendMessageConfiguration(return_immediately=True),
        )
        sent = await a2a_stub.SendMessage(request, metadata=md(alice))
        grpc_stream = a2a_stub.SubscribeToTask(a2a.SubscribeToTaskRequest(id=sent.task.id), metadata=md(alice))
        assert (await grpc_stream.read()).HasField("task")
        async with httpx.AsyncClient(timeout=30) as client:
            url = f"http://{replica.http.address}/a2a/v1"
            http_stream = _open_stream(
                client, url, call("SubscribeToTask", {"id": sent.task.id}), alice.tokens.access_token
            )
            first = await anext(http_stream)
            assert "task" in first["result"]
            stopping = asyncio.create_task(replica.stop(grace=5))
            last = await asyncio.wait_for(anext(http_stream), 10)
            await stopping
        assert last["event"] == "error"
        assert info_of(last["error"])["reason"] == "SHUTTING_DOWN"
        failure = await rpc_error(_read_all(grpc_stream))
        assert failure.code == grpc.StatusCode.UNAVAILABLE
        await channel.close()


async def test_pages_of_tasks_with_their_artifacts_end_before_the_message_limit(
    settings: Settings, alice: Account, scan: Scan, artifacts: Any
) -> None:
    """A gateway with a small message limit: each page holds the tasks that fit, and paging on
    finds every task exactly once; a task's own answer keeps the artifacts that fit."""
    limit = 300_000
    content = b"x" * 60_000  # inlined (at most 64 KiB each)
    async with running(GATEWAY, replace(settings, max_message_bytes=limit), port=0) as replica:
        channel = grpc.aio.insecure_channel(replica.address, options=[("grpc.max_receive_message_length", 8 << 20)])
        a2a_stub = a2a_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]
        context = ""
        created: list[str] = []
        for _ in range(4):
            message = user_message(f"{scan.trigger} https://acme.com", context_id=context)
            request = a2a.SendMessageRequest(
                message=message, configuration=a2a.SendMessageConfiguration(return_immediately=True)
            )
            sent = await a2a_stub.SendMessage(request, metadata=md(alice))
            context = sent.task.context_id
            created.append(sent.task.id)
            for n in range(6):
                await upload_artifact(artifacts, alice.md, sent.task.id, content, display_name=f"part-{n}.txt")
        got = await a2a_stub.GetTask(a2a.GetTaskRequest(id=created[0]), metadata=md(alice))
        assert got.ByteSize() < limit and 0 < len(got.artifacts) < 6
        seen: list[str] = []
        listing = a2a.ListTasksRequest(context_id=context, include_artifacts=True, page_size=100)
        while True:
            page = await a2a_stub.ListTasks(listing, metadata=md(alice))
            assert page.ByteSize() < limit
            assert page.tasks, "every page progresses"
            assert page.page_size == len(page.tasks)
            seen += [task.id for task in page.tasks]
            if not page.next_page_token:
                break
            listing = a2a.ListTasksRequest(
                context_id=context, include_artifacts=True, page_size=100, page_token=page.next_page_token
            )
        assert sorted(seen) == sorted(created)
        await channel.close()


async def test_an_agents_own_jsonrpc_endpoint_is_its_tenant(platform: Platform, alice: Account, scan: Scan) -> None:
    """For clients that send no tenant: the agent's endpoint (its card's JSONRPC interface)."""
    url = f"{http_base(platform)}/a2a/agents/{scan.agent_id}"
    headers = {"authorization": f"Bearer {alice.tokens.access_token}", "a2a-version": "1.0"}
    params = {**send_params(user_message("hello")), "configuration": {"returnImmediately": True}}
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.post(url, json=call("SendMessage", params), headers=headers)
        task = reply.json()["result"]["task"]
        assert task["metadata"]["nexus"]["agent_id"] == scan.agent_id
        elsewhere = await client.post(
            url, json=call("GetTask", {"id": task["id"], "tenant": "someone_else"}), headers=headers
        )
        error = elsewhere.json()["error"]
        assert (error["code"], fields_of(error)) == (-32602, {"tenant"})
        card = (await client.get(url + "/.well-known/agent-card.json", headers=headers)).json()
        assert {i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "JSONRPC"} == {url}


async def test_plain_text_to_the_platform_goes_to_the_configured_default_agent(
    settings: Settings, alice: Account, scan: Scan
) -> None:
    async with running(GATEWAY, replace(settings, a2a_default_agent=scan.agent_id), port=0) as replica:
        channel = grpc.aio.insecure_channel(replica.address)
        a2a_stub = a2a_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]
        request = a2a.SendMessageRequest(
            message=user_message("hello"), configuration=a2a.SendMessageConfiguration(return_immediately=True)
        )
        sent = await a2a_stub.SendMessage(request, metadata=md(alice))
        assert agent_of(sent.task) == scan.agent_id
        await channel.close()
