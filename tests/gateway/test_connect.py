"""Every GatewayService RPC over Connect (JSON and binary) and gRPC-Web on the HTTP port: the same
servicer as the gRPC port, the same answers, the same errors with their details decoded, and
bad input never a 500."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import TYPE_CHECKING

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.protocol import ProtocolType
from connectrpc.request import Headers, RequestContext
from google.protobuf import json_format

from gateway.http.connect import SERVICE, ConnectContext, snake_case
from launch.registry import GATEWAY
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.gateway.v1.gateway_connect import GatewayServiceClient
from nexus.kit.config import Settings
from nexus.kit.server import running
from nexus.protobuf_py.google.rpc import error_details_pb
from tests.gateway.conftest import PASSWORD, Account, Platform, Scan, Worker, unique
from tests.gateway.http_support import Http, bearer, json_of

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub


def connect_client(http: Http, protocol: ProtocolType = ProtocolType.CONNECT) -> GatewayServiceClient:
    return GatewayServiceClient(http.base, protocol=protocol, http_client=http.client)


async def test_every_gateway_rpc_is_served_over_connect(http: Http) -> None:
    """Each RPC of the proto answers on the HTTP port (no token: UNAUTHENTICATED, not 404)."""
    public = {"SignUp", "SignIn", "Refresh", "SignOut"}
    for method in SERVICE.methods:
        assert hasattr(GatewayServiceClient, snake_case(method.name)), method.name
        if method.server_streaming:
            # Connect frames a stream's messages (flags, length) and ends it with a JSON trailer.
            envelope = b"\x00" + (2).to_bytes(4, "big") + b"{}"
            reply = await http.rpc(method.name, envelope, headers={"content-type": "application/connect+json"})
            assert reply.status == 200 and b'"code":"unauthenticated"' in reply.content.replace(b" ", b""), method.name
        elif method.name not in public:
            refused = await http.error(method.name, {})
            assert (refused.status, refused.code) == (401, "unauthenticated"), method.name


async def test_sign_up_and_get_me_over_connect_json_answer_what_the_grpc_port_answers(http: Http, gw: Stub) -> None:
    email = f"{unique('cj')}@example.com"
    signed = await http.ok("SignUp", {"email": email, "password": PASSWORD, "nickname": "Connie"})
    token = signed["tokens"]["accessToken"]
    over_http = await http.ok("GetMe", {}, token=token)
    over_grpc = await gw.GetMe(pb.GetMeRequest(), metadata=(("authorization", f"Bearer {token}"),))
    assert over_http == json.loads(json_format.MessageToJson(over_grpc))
    assert over_http["profile"]["nickname"] == "Connie"


async def test_binary_connect_and_grpc_web_clients_run_a_task_and_stream_it_to_its_end(
    http: Http, alice: Account, scan: Scan, worker: Worker
) -> None:
    headers = bearer(alice.tokens.access_token)
    connect = connect_client(http)
    task = await connect.run_command(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), headers=headers)
    claimed = await worker.claim(scan.agent_id)
    await worker.say(claimed, "one", "two")
    await worker.finish(claimed)
    streamed = [e async for e in connect.stream_task(pb.StreamTaskRequest(task_id=task.task_id), headers=headers)]
    assert [e.seq for e in streamed] == list(range(1, len(streamed) + 1))
    assert streamed[-1].metadata["status"] == "finished"
    web = connect_client(http, ProtocolType.GRPC_WEB)
    tail = [e async for e in web.stream_task(pb.StreamTaskRequest(task_id=task.task_id, after_seq=3), headers=headers)]
    assert [e.seq for e in tail] == [e.seq for e in streamed[3:]]
    got = await web.get_task(pb.GetTaskRequest(task_id=task.task_id), headers=headers)
    assert got.last_seq == streamed[-1].seq


async def test_errors_carry_error_info_and_field_violations_decoded(http: Http, alice: Account) -> None:
    token = alice.tokens.access_token
    bad = await http.error("GetTask", {"taskId": "not-a-uuid"}, token=token)
    assert (bad.status, bad.code) == (400, "invalid_argument")
    assert (bad.domain, bad.fields) == ("nexus.gateway.v1", {"task_id"})
    # A downstream service's error passes through: its code, domain and reason.
    missing = await http.error("GetTask", {"taskId": str(uuid.uuid4())}, token=token)
    assert (missing.status, missing.code, missing.reason) == (404, "not_found", "TASK_NOT_FOUND")
    assert missing.domain == "nexus.runtime.v1"
    # Binary clients decode the same details.
    with pytest.raises(ConnectError) as caught:
        await connect_client(http).get_task(pb.GetTaskRequest(task_id="x"), headers=bearer(token))
    assert caught.value.code == Code.INVALID_ARGUMENT
    bad_request = next(d for d in caught.value.details if d.type_name == "google.rpc.BadRequest")
    decoded = bad_request.value(error_details_pb.BadRequest)
    assert decoded is not None and [v.field for v in decoded.field_violations] == ["task_id"]


async def test_a_call_without_a_token_is_unauthenticated_and_public_methods_need_none(http: Http) -> None:
    refused = await http.error("GetMe", {})
    assert (refused.status, refused.code, refused.reason) == (401, "unauthenticated", "TOKEN_MISSING")
    forged = await http.error("GetMe", {}, token="not.a.jwt")
    assert (forged.status, forged.code) == (401, "unauthenticated")
    wrong = await http.error("SignIn", {"email": f"{unique('nobody')}@example.com", "password": PASSWORD})
    assert wrong.code == "unauthenticated"


async def test_another_users_task_is_not_found_exactly_like_a_missing_one(
    http: Http, alice: Account, bob: Account, scan: Scan
) -> None:
    task = await http.ok("RunCommand", {"text": f"{scan.trigger} https://acme.com"}, token=alice.tokens.access_token)

    def calls(task_id: str) -> list[tuple[str, dict[str, object]]]:
        return [
            ("GetTask", {"taskId": task_id}),
            ("CancelTask", {"taskId": task_id}),
            ("SubmitInput", {"taskId": task_id, "text": "hello"}),
            ("CreateStreamTicket", {"taskId": task_id}),
            ("UpdateTask", {"task": {"taskId": task_id, "isPinned": True}, "updateMask": "isPinned"}),
            ("ListArtifacts", {"taskId": task_id}),
        ]

    for (method, theirs), (_, nobodys) in zip(calls(task["taskId"]), calls(str(uuid.uuid4())), strict=True):
        seen = await http.error(method, theirs, token=bob.tokens.access_token)
        missing = await http.error(method, nobodys, token=bob.tokens.access_token)
        assert (seen.status, seen.code, seen.reason) == (404, "not_found", "TASK_NOT_FOUND"), method
        assert (seen.body["message"], seen.reason) == (missing.body["message"], missing.reason), method
    # And alice still has her task, untouched.
    mine = await http.ok("GetTask", {"taskId": task["taskId"]}, token=alice.tokens.access_token)
    assert mine["status"] == "TASK_STATUS_QUEUED" and not mine.get("isPinned")


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("ListTasks", b'{"pageSize": "soon"}', "page_size"),
        ("ListTasks", b'{"pageSize": -3}', "page_size"),
        ("ListTasks", b'{"archiveFilter": 99}', "archive_filter"),
        ("GetTask", b'{"taskId": 7}', "task_id"),
        ("GetTask", b'{"taskId": "\\ud800"}', "task_id"),
        ("GetTask", b'{"taskId": "a\\u0000b"}', "task_id"),
        ("RunCommand", b'{"text": "/scan \\u0000"}', "text"),
        ("GetTask", b"{not json", ""),
        ("GetTask", b"\xff\xfe\x00", ""),
        ("GetTask", b"[" * 5000 + b"]" * 5000, ""),
        (
            "ConnectAgent",
            b'{"agentId": "a1", "provider": "p", "displayName": "d", "credentials": '
            + b'{"a":' * 40
            + b"1"
            + b"}" * 40
            + b"}",
            "credentials",
        ),
    ],
)
async def test_malformed_bodies_answer_invalid_argument_naming_the_field_never_a_500(
    http: Http, alice: Account, method: str, body: bytes, field: str
) -> None:
    bad = await http.error(method, body, token=alice.tokens.access_token)
    assert (bad.status, bad.code) == (400, "invalid_argument"), bad.body
    assert bad.fields == {field}
    assert "soon" not in json.dumps(bad.body)  # the submitted value is never echoed


async def test_invalid_utf8_in_a_binary_request_names_the_field(http: Http, alice: Account) -> None:
    body = b"\x0a\x03\xff\xfe\xfd"  # field 1 (task_id), three bytes that are not UTF-8
    reply = await http.rpc(
        "GetTask", body, token=alice.tokens.access_token, headers={"content-type": "application/proto"}
    )
    assert reply.status == 400
    encoded = next(d["value"] for d in json_of(reply)["details"] if d["type"] == "google.rpc.BadRequest")
    info = error_details_pb.BadRequest.from_binary(base64.b64decode(encoded + "=="))
    assert [v.field for v in info.field_violations] == ["task_id"]


async def test_an_oversized_request_is_refused_before_it_is_read(
    http: Http, alice: Account, settings: Settings
) -> None:
    body = json.dumps({"text": "x" * (settings.max_message_bytes + 10)}).encode()
    reply = await http.rpc("RunCommand", body, token=alice.tokens.access_token)
    assert reply.status == 429 and json_of(reply)["code"] == "resource_exhausted"


async def test_plain_http_gets_the_console_and_unknown_routes_a_json_404(http: Http) -> None:
    page = await http.get("/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert b'src="/console/app.js"' in page.content
    script = await http.get("/console/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    for path in ("/nope", "/console/../app.py", "/console/missing.js"):
        missing = await http.get(path)
        assert missing.status == 404 and json_of(missing)["code"] == "not_found", path


async def test_cors_is_off_by_default_and_answers_only_configured_origins(
    http: Http, settings: Settings, platform: Platform
) -> None:
    origin = {"origin": "https://app.example.com"}
    plain = await http.rpc("SignIn", {}, headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    preflight = await http.client.options(http.base + "/nexus.gateway.v1.GatewayService/SignIn", origin)
    assert preflight.status == 403 and "access-control-allow-origin" not in preflight.headers

    allowed = settings.with_overrides(cors_origins=("https://app.example.com",))
    async with running(GATEWAY, allowed, port=0) as other:
        assert other.http is not None
        other_http = Http(f"http://{other.http.address}", http.client)
        asked = {**origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type"}
        preflight = await other_http.client.options(other_http.base + "/nexus.gateway.v1.GatewayService/SignIn", asked)
        assert preflight.status == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        answered = await other_http.rpc("SignIn", {}, headers=origin)
        assert answered.headers["access-control-allow-origin"] == "https://app.example.com"
        stranger = await other_http.rpc("SignIn", {}, headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers


async def test_each_connect_call_is_logged_once_without_its_token(
    http: Http, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus.rpc")
    await http.ok("GetMe", {}, token=alice.tokens.access_token)
    lines = [r for r in caplog.records if getattr(r, "rpc", {}).get("method", "").endswith("/GetMe")]
    assert len(lines) == 1
    entry = lines[0].rpc  # type: ignore[attr-defined]
    assert (entry["code"], entry["protocol"], entry["caller"]) == ("OK", "connect", alice.user_id)
    assert alice.tokens.access_token not in caplog.text


@pytest.mark.parametrize(
    ("client", "peer"),
    [("127.0.0.1:5555", "ipv4:127.0.0.1:5555"), ("[::1]:5555", "ipv6:[::1]:5555"), (None, "")],
)
def test_the_servicer_sees_a_connect_caller_as_it_sees_a_grpc_one(client: str | None, peer: str) -> None:
    """Time left from Connect-Timeout-Ms, the peer in gRPC's form, the headers as metadata."""
    method = MethodInfo(
        name="GetTask",
        service_name=SERVICE.full_name,
        input=pb.GetTaskRequest,
        output=pb.GetTaskRequest,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )
    headers = Headers({"Authorization": "Bearer t", "X-Thing": "1"})
    ctx = RequestContext(
        method=method, http_method="POST", request_headers=headers, timeout_ms=5000, client_address=client
    )
    seen = ConnectContext(ctx)
    remaining = seen.time_remaining()
    assert remaining is not None and 0 < remaining <= 5
    assert seen.peer() == peer
    assert ("authorization", "Bearer t") in seen.invocation_metadata()
    untimed = RequestContext(method=method, http_method="POST", request_headers=headers)
    assert ConnectContext(untimed).time_remaining() is None
