"""The server kit through real channels: interceptors, health, reflection and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from nexus.kit import auth, errors
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, Resources, ServiceDefinition
from nexus.kit.tokens import ensure_signing_key
from tests.introspection import assert_health_answers_precisely, assert_reflection_answers_precisely
from tests.support import Tokens, eventually, rpc_error

SERVICE = "nexus.testing.Echo"
Struct = struct_pb2.Struct
# How many calls of each action the echo service has begun.
begun: Counter[str] = Counter()


async def unary(request: Struct, context: Any) -> Struct:
    action = request.fields["action"].string_value if "action" in request.fields else ""
    begun[action] += 1
    if action == "invalid":
        raise errors.invalid("name", "must be lowercase")
    if action == "bug":
        raise RuntimeError("a bug that must not leak")
    if action == "slow":
        await asyncio.sleep(0.5)  # the behaviour under test: a call that takes a while
    if action == "hang":
        await asyncio.Event().wait()
    if action == "big":
        return Struct(fields={"blob": struct_pb2.Value(string_value="b" * int(request.fields["bytes"].number_value))})
    return Struct(fields={"caller": struct_pb2.Value(string_value=auth.caller().subject)})


async def stream(request: Struct, context: Any) -> AsyncIterator[Struct]:
    yield Struct(fields={"n": struct_pb2.Value(number_value=1)})
    if "bytes" in request.fields:
        yield Struct(fields={"blob": struct_pb2.Value(string_value="b" * int(request.fields["bytes"].number_value))})
    if "fail" in request.fields:
        raise errors.FailedPrecondition("the task is finished", reason="TASK_FINISHED")
    await asyncio.sleep(3600)


def echo_definition() -> ServiceDefinition:
    def register(server: grpc.aio.Server) -> None:
        common: dict[str, Any] = {
            "request_deserializer": Struct.FromString,
            "response_serializer": Struct.SerializeToString,
        }
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **common),
            "Public": grpc.unary_unary_rpc_method_handler(lambda r, c: _public(), **common),
            "Stream": grpc.unary_stream_rpc_method_handler(stream, **common),
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])

    return ServiceDefinition(
        name="echo",
        domain="nexus.testing.v1",
        register=register,
        service_names=[SERVICE],
        public_methods=[f"/{SERVICE}/Public"],
    )


async def _public() -> Struct:
    principal = auth.optional_caller()
    return Struct(fields={"caller": struct_pb2.Value(string_value=principal.subject if principal else "")})


@pytest.fixture
def kit_settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, shutdown_grace_s=2.0)
    ensure_signing_key(settings.resolved_signing_keys_dir)
    return settings


@pytest.fixture
async def echo(kit_settings: Settings) -> AsyncIterator[tuple[NexusServer, grpc.aio.Channel]]:
    server = NexusServer(echo_definition(), Resources(kit_settings))
    address = await server.start(port=0)
    channel = grpc.aio.insecure_channel(address)
    yield server, channel
    await channel.close()
    await server.stop(grace=0.5)


@pytest.fixture
def tokens_here(kit_settings: Settings) -> Tokens:
    from nexus.kit.tokens import TokenSigner

    key = ensure_signing_key(kit_settings.resolved_signing_keys_dir)
    return Tokens(TokenSigner(key, issuer="nexus", audience="nexus"))


def calls(channel: grpc.aio.Channel) -> tuple[Any, Any, Any]:
    kw: dict[str, Any] = {"request_serializer": Struct.SerializeToString, "response_deserializer": Struct.FromString}
    return (
        channel.unary_unary(f"/{SERVICE}/Unary", **kw),
        channel.unary_unary(f"/{SERVICE}/Public", **kw),
        channel.unary_stream(f"/{SERVICE}/Stream", **kw),
    )


def action(name: str) -> Struct:
    return Struct(fields={"action": struct_pb2.Value(string_value=name)})


async def test_caller_comes_from_the_verified_token(echo: Any, tokens_here: Tokens) -> None:
    unary_call, public_call, _ = calls(echo[1])
    user_id, metadata = tokens_here.user()
    reply = await unary_call(Struct(), metadata=metadata)
    assert reply.fields["caller"].string_value == user_id
    assert (await public_call(Struct())).fields["caller"].string_value == ""


async def test_missing_or_bad_token_is_unauthenticated(echo: Any, tokens_here: Tokens) -> None:
    unary_call, public_call, stream_call = calls(echo[1])
    failure = await rpc_error(unary_call(Struct()))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    failure = await rpc_error(unary_call(Struct(), metadata=(("authorization", "Basic abc"),)))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    _, expired = tokens_here.user(ttl_s=-60)
    failure = await rpc_error(unary_call(Struct(), metadata=expired))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
    # A public method still refuses a bad token rather than ignoring it.
    failure = await rpc_error(public_call(Struct(), metadata=expired))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    failure = await rpc_error(_first(stream_call(Struct())))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def _first(call: Any) -> Any:
    async for item in call:
        return item


async def test_domain_errors_carry_error_info_and_bad_request(echo: Any, tokens_here: Tokens) -> None:
    unary_call, _, _ = calls(echo[1])
    _, metadata = tokens_here.user()
    failure = await rpc_error(unary_call(action("invalid"), metadata=metadata))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (failure.reason, failure.domain) == ("INVALID_ARGUMENT", "nexus.testing.v1")
    assert [(v.field, v.description) for v in failure.violations] == [("name", "must be lowercase")]


async def test_unexpected_exception_is_internal_without_details(echo: Any, tokens_here: Tokens) -> None:
    unary_call, _, _ = calls(echo[1])
    _, metadata = tokens_here.user()
    failure = await rpc_error(unary_call(action("bug"), metadata=metadata))
    assert failure.code == grpc.StatusCode.INTERNAL
    assert "must not leak" not in failure.message


async def test_errors_in_streams_are_mapped_after_items_were_sent(echo: Any, tokens_here: Tokens) -> None:
    _, _, stream_call = calls(echo[1])
    _, metadata = tokens_here.user()
    received: list[Struct] = []

    async def consume() -> None:
        async for item in stream_call(Struct(fields={"fail": struct_pb2.Value()}), metadata=metadata):
            received.append(item)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await consume()
    assert len(received) == 1
    info, _ = errors.details_of(raised.value)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info is not None and info.reason == "TASK_FINISHED"


async def test_invalid_utf8_in_a_string_field_is_invalid_argument_naming_the_field(
    echo: Any, tokens_here: Tokens
) -> None:
    _, metadata = tokens_here.user()
    raw = echo[1].unary_unary(
        f"/{SERVICE}/Unary", request_serializer=lambda b: b, response_deserializer=Struct.FromString
    )
    body = Struct(fields={"title": struct_pb2.Value(string_value="XXXX")}).SerializeToString()
    lone_surrogate = b"\xed\xa0\x80"  # UTF-8 encoding of U+D800, which UTF-8 forbids
    failure = await rpc_error(raw(body.replace(b"XXXX", lone_surrogate + b"x"), metadata=metadata))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert failure.fields == {"fields.value.string_value"}
    failure = await rpc_error(raw(b"\xff\xff\xff", metadata=metadata))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_and_reflection_answer_without_a_token(echo: Any) -> None:
    channel = echo[1]
    health: Any = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
    names: set[str] = set()
    async for response in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
        names |= {s.name for s in response.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_hostile_health_and_reflection_calls_get_precise_answers_and_log_no_error(
    echo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    channel = echo[1]
    with caplog.at_level(logging.INFO):
        await assert_health_answers_precisely(channel, [SERVICE])
        await assert_reflection_answers_precisely(channel, [])
    entries = [getattr(r, "rpc") for r in caplog.records if hasattr(r, "rpc")]  # noqa: B009
    assert {e["code"] for e in entries} <= {"OK", "NOT_FOUND", "INVALID_ARGUMENT", "CANCELLED"}
    assert "/grpc.health.v1.Health/List" in {e["method"] for e in entries}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_reflection_serves_grpcs_python_reflection_client(echo: Any) -> None:
    def look_up(address: str) -> tuple[list[str], str, str]:
        with grpc.insecure_channel(address) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            found = database.FindFileContainingSymbol("grpc.reflection.v1.ServerReflection")
            return database.get_services(), found.name, found.package

    # A blocking client, so in a thread: the server runs on this thread's event loop.
    services, name, package = await asyncio.to_thread(look_up, echo[0].address)
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= set(services)
    assert (name, package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")


def big(size: int) -> Struct:
    return Struct(fields={"action": struct_pb2.Value(string_value="big"), "bytes": struct_pb2.Value(number_value=size)})


async def test_a_response_over_the_message_limit_fails_with_details_and_is_logged_as_it_failed(
    kit_settings: Settings, tokens_here: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 64 * 1024
    server = NexusServer(echo_definition(), Resources(replace(kit_settings, max_message_bytes=limit)))
    address = await server.start(port=0)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            unary_call, _, stream_call = calls(channel)
            _, metadata = tokens_here.user()
            assert (
                len((await unary_call(big(limit - 100), metadata=metadata)).fields["blob"].string_value) == limit - 100
            )
            with caplog.at_level(logging.INFO, logger="nexus.rpc"):
                failure = await rpc_error(unary_call(big(limit), metadata=metadata))
            assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE")
            assert f"larger than the message limit ({limit} bytes)" in failure.message
            entries = [getattr(r, "rpc") for r in caplog.records if hasattr(r, "rpc")]  # noqa: B009
            assert [(e["method"], e["code"]) for e in entries] == [(f"/{SERVICE}/Unary", "RESOURCE_EXHAUSTED")]

            received: list[Struct] = []

            async def consume() -> None:
                async for item in stream_call(big(limit), metadata=metadata):
                    received.append(item)

            failure = await rpc_error(consume())
            assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE")
            assert len(received) == 1  # the items before the oversized one arrived
    finally:
        await server.stop(grace=0.5)


async def test_shutdown_goes_not_serving_finishes_unary_and_ends_streams_unavailable(
    kit_settings: Settings, tokens_here: Tokens
) -> None:
    server = NexusServer(echo_definition(), Resources(replace(kit_settings, shutdown_grace_s=3.0)))
    address = await server.start(port=0)
    async with grpc.aio.insecure_channel(address) as channel:
        unary_call, _, stream_call = calls(channel)
        _, metadata = tokens_here.user()
        health: Any = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stream = stream_call(Struct(), metadata=metadata)
        assert (await stream.read()).fields["n"].number_value == 1
        slow = asyncio.ensure_future(unary_call(action("slow"), metadata=metadata))
        await eventually(lambda: server.admission.inflight_calls == 1, "the slow call to be in flight")
        stopping = asyncio.ensure_future(server.stop())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stream.read()
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (await slow).fields["caller"].string_value  # the in-flight unary call finished
        # Health watches end too, once they have seen NOT_SERVING: the stop need not wait them out.
        with pytest.raises(grpc.aio.AioRpcError) as watch_ended:
            await watch.read()
        assert watch_ended.value.code() == grpc.StatusCode.UNAVAILABLE
        await stopping


async def test_request_log_has_method_code_duration_and_never_the_token(
    echo: Any, tokens_here: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    unary_call, _, _ = calls(echo[1])
    _, metadata = tokens_here.user()
    token = metadata[0][1].split()[1]
    with caplog.at_level(logging.INFO, logger="nexus.rpc"):
        await unary_call(Struct(), metadata=metadata)
        await rpc_error(unary_call(action("invalid"), metadata=metadata))

        def logged() -> list[Any]:
            # The server writes its line as the call ends, which may be after the client has its
            # status: wait for both lines rather than assume they are there.
            entries = [getattr(r, "rpc") for r in caplog.records if hasattr(r, "rpc")]  # noqa: B009
            return entries if len(entries) >= 2 else []

        entries = await eventually(logged, "both calls' request-log lines")
    assert [(e["method"], e["code"]) for e in entries] == [
        (f"/{SERVICE}/Unary", "OK"),
        (f"/{SERVICE}/Unary", "INVALID_ARGUMENT"),
    ]
    assert all(e["duration_ms"] >= 0 for e in entries)
    assert token not in caplog.text and token not in json.dumps(entries)


# -- overload and shutdown: refused with a status that says what to do, never CANCELLED ----------


async def outcome(call: Awaitable[Any]) -> tuple[grpc.StatusCode, float | None]:
    """A call's status code and the wait its RetryInfo asks for (None without one)."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code(), errors.retry_delay_of(err)
    return grpc.StatusCode.OK, None


async def test_a_burst_past_the_call_budget_is_refused_with_retry_info_and_never_cancelled(
    kit_settings: Settings, tokens_here: Tokens
) -> None:
    """4,000 calls at once against a budget of 16: gRPC core alone would leave most waiting in its
    backlog and answer about a thousand of them CANCELLED."""
    settings = replace(kit_settings, max_inflight_calls=16, retry_after_s=0.3)
    server = NexusServer(echo_definition(), Resources(settings))
    address = await server.start(port=0)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            unary_call, _, _ = calls(channel)
            _, metadata = tokens_here.user()
            burst = [outcome(unary_call(action("slow"), metadata=metadata, timeout=60)) for _ in range(4000)]
            outcomes = await asyncio.gather(*burst)
            codes = Counter(code.name for code, _ in outcomes)
            assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
            refused = [delay for code, delay in outcomes if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
            assert set(refused) == {0.3}  # every refusal says how long to wait
            # Still serving, and with its whole budget back.
            assert (
                await asyncio.gather(*[outcome(unary_call(Struct(), metadata=metadata)) for _ in range(16)])
                == [(grpc.StatusCode.OK, None)] * 16
            )
            assert server.admission.inflight_calls == 0
    finally:
        await server.stop(grace=0.5)


async def test_open_streams_have_a_budget_of_their_own_and_do_not_starve_unary_calls(
    kit_settings: Settings, tokens_here: Tokens
) -> None:
    server = NexusServer(echo_definition(), Resources(replace(kit_settings, max_inflight_calls=2, max_open_streams=3)))
    address = await server.start(port=0)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            unary_call, _, stream_call = calls(channel)
            _, metadata = tokens_here.user()
            streams = [stream_call(Struct(), metadata=metadata) for _ in range(3)]
            for stream in streams:
                assert (await stream.read()).fields["n"].number_value == 1
            failure = await rpc_error(_first(stream_call(Struct(), metadata=metadata)))
            assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
            # Three open streams, and unary calls still have their budget of two.
            replies = await asyncio.gather(*[unary_call(Struct(), metadata=metadata) for _ in range(2)])
            assert all(r.fields["caller"].string_value for r in replies)
            health: Any = health_pb2_grpc.HealthStub(channel)
            probe = await health.Check(health_pb2.HealthCheckRequest())
            assert probe.status == health_pb2.HealthCheckResponse.SERVING
            for stream in streams:
                stream.cancel()
            await eventually(lambda: server.admission.open_streams == 0, "the cancelled streams to close")
            assert (await stream_call(Struct(), metadata=metadata).read()).fields["n"].number_value == 1
    finally:
        await server.stop(grace=0.5)


async def test_calls_that_keep_arriving_during_a_shutdown_are_answered_ok_or_unavailable_never_cancelled(
    kit_settings: Settings, tokens_here: Tokens
) -> None:
    """200 clients call back to back while the server stops; grpc.aio's own stop answers the
    calls waiting in core's backlog CANCELLED."""
    server = NexusServer(echo_definition(), Resources(replace(kit_settings, shutdown_grace_s=3.0)))
    address = await server.start(port=0)
    served = 0
    async with grpc.aio.insecure_channel(address) as channel:
        unary_call, _, _ = calls(channel)
        _, metadata = tokens_here.user()

        async def client() -> list[tuple[grpc.StatusCode, float | None]]:
            nonlocal served
            seen = []
            while True:
                seen.append(await outcome(unary_call(Struct(), metadata=metadata, timeout=30)))
                if seen[-1][0] != grpc.StatusCode.OK:
                    return seen
                served += 1

        clients = [asyncio.ensure_future(client()) for _ in range(200)]
        await eventually(lambda: served >= 2000, "the clients to be in full swing")
        await server.stop()
        outcomes = [o for seen in await asyncio.gather(*clients) for o in seen]
    codes = Counter(code.name for code, _ in outcomes)
    assert set(codes) == {"OK", "UNAVAILABLE"}, codes
    # The refusals made while the server still ran ask for a wait; later calls find no server.
    assert 0.0 < max(delay or 0.0 for _, delay in outcomes) <= kit_settings.retry_after_s


async def test_a_call_still_running_when_the_grace_ends_is_answered_unavailable(
    kit_settings: Settings, tokens_here: Tokens
) -> None:
    server = NexusServer(echo_definition(), Resources(kit_settings))
    address = await server.start(port=0)
    async with grpc.aio.insecure_channel(address) as channel:
        unary_call, _, _ = calls(channel)
        _, metadata = tokens_here.user()
        before = begun["hang"]
        hung = asyncio.ensure_future(rpc_error(unary_call(action("hang"), metadata=metadata)))
        await eventually(lambda: begun["hang"] > before, "the hanging call to be in flight")
        await server.stop(grace=0.5)
        failure = await hung
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
