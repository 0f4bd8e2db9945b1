"""Hostile input to the health and reflection services every Nexus server runs (DESIGN §2, §5).

Each server's bad-input tests call `assert_health_answers_precisely` and
`assert_reflection_answers_precisely` on a real channel to it: no token, garbage bytes, unknown
and huge names. Nothing may answer INTERNAL or UNKNOWN, nor log at error level.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from nexus.kit.errors import details_of

LONE_SURROGATE = b"\xed\xa0\x80"  # the UTF-8 form of U+D800, which UTF-8 forbids
GARBAGE = b"\xff\xff\xff\xff"  # a field key whose varint never ends
HUGE_NAME = "n" * (7 * 1024 * 1024)  # under the server's receive limit, over what a client receives by default
REFLECTION = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


def _raw_unary(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


async def _failure(call: Any) -> tuple[grpc.StatusCode, str | None, set[str]]:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        info, violations = details_of(err)
        return err.code(), info.reason if info else None, {v.field for v in violations}
    raise AssertionError("the call succeeded")


async def assert_health_answers_precisely(channel: grpc.aio.Channel, services: Sequence[str]) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
    for service in services:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service

    listed = await health.List(health_pb2.HealthListRequest())  # type: ignore[attr-defined]
    assert {"", *services} <= set(listed.statuses)
    assert {s.status for s in listed.statuses.values()} == {health_pb2.HealthCheckResponse.SERVING}

    for unknown in ("no.such.Service", HUGE_NAME, "a\x00b", "\u00e9\u4e2d"):
        code, _, _ = await _failure(health.Check(health_pb2.HealthCheckRequest(service=unknown)))
        assert code == grpc.StatusCode.NOT_FOUND, unknown[:20]

    for method in ("Check", "List"):
        code, reason, _ = await _failure(_raw_unary(channel, f"/grpc.health.v1.Health/{method}")(GARBAGE))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"), method
    surrogate = (
        health_pb2.HealthCheckRequest(service="XXXX").SerializeToString().replace(b"XXXX", LONE_SURROGATE + b"x")
    )
    code, reason, fields = await _failure(_raw_unary(channel, "/grpc.health.v1.Health/Check")(surrogate))
    assert (code, reason, fields) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", {"service"}), (
        code,
        reason,
        fields,
    )

    # Watch: an unknown service is reported as such and the stream stays open for changes.
    for unknown in ("no.such.Service", HUGE_NAME):
        watch = health.Watch(health_pb2.HealthCheckRequest(service=unknown))
        first = await asyncio.wait_for(watch.read(), 10)
        assert first.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        watch.cancel()
    raw_watch = channel.unary_stream(
        "/grpc.health.v1.Health/Watch", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    code, reason, _ = await _failure(_drain(raw_watch(GARBAGE)))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


async def _reflect(
    channel: grpc.aio.Channel, service: str, requests: Sequence[bytes]
) -> list[rpb.ServerReflectionResponse]:
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=lambda b: b,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    return [response async for response in call(iter(requests))]


def _ask(**field: Any) -> bytes:
    return rpb.ServerReflectionRequest(**field).SerializeToString()


async def assert_reflection_answers_precisely(channel: grpc.aio.Channel, services: Sequence[str]) -> None:
    """Over v1 and v1alpha alike (the same messages on the wire)."""
    for reflection in REFLECTION:
        listed = await _reflect(channel, reflection, [_ask(list_services="")])
        expected = {*services, "grpc.health.v1.Health", *REFLECTION}
        assert expected <= {s.name for s in listed[0].list_services_response.service}, reflection

        # Each resolves to its file (what `buf curl --list-methods` asks next).
        resolved = await _reflect(channel, reflection, [_ask(file_containing_symbol=name) for name in sorted(expected)])
        assert all(r.file_descriptor_response.file_descriptor_proto for r in resolved), reflection

        unknown = await _reflect(
            channel,
            reflection,
            [
                _ask(file_containing_symbol="no.such.Symbol"),
                _ask(file_containing_symbol=""),
                _ask(file_containing_symbol="a\x00b"),
                _ask(file_by_filename="../../etc/passwd"),
                _ask(all_extension_numbers_of_type="no.such.Type"),
                _ask(file_containing_extension=rpb.ExtensionRequest(containing_type="x", extension_number=-1)),
                _ask(
                    file_containing_extension=rpb.ExtensionRequest(
                        containing_type="google.protobuf.Struct", extension_number=2**31 - 1
                    )
                ),
                _ask(file_containing_symbol=HUGE_NAME),
            ],
        )
        assert [r.error_response.error_code for r in unknown] == [NOT_FOUND] * 8, reflection
        # A huge name is not copied back: the reply stays far under the message limit.
        assert unknown[-1].ByteSize() < 1024

        empty = await _reflect(channel, reflection, [_ask(host="h")])
        assert empty[0].error_response.error_code == INVALID_ARGUMENT

        for body, field in ((GARBAGE, ""), (_ask(file_containing_symbol="XXXX"), "file_containing_symbol")):
            undecodable = body.replace(b"XXXX", LONE_SURROGATE + b"x")
            code, reason, fields = await _failure(_reflect(channel, reflection, [undecodable]))
            assert (code, reason, fields) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", {field})


def buf_curl_list_methods(address: str, protocol: str) -> list[str]:
    """The methods `buf curl` finds by reflection alone, over one reflection protocol."""
    buf = Path(sys.executable).parent / "buf"
    result = subprocess.run(
        [
            str(buf),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--reflect-protocol",
            protocol,
            "--list-methods",
            f"http://{address}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()
