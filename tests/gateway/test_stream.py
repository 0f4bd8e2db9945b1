"""StreamTask is the runtime's stream, proxied: events in order, the runtime's end and errors
reach the client, a client's cancel reaches the runtime, and deadlines are forwarded (as they are
for every downstream call)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from gateway.downstream import UNARY_CAP_S, downstream_timeout
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.gateway.v1 import gateway_pb2_grpc as pb_grpc
from nexus.kit.config import Settings
from nexus.runtime.v1 import task_pb2
from tests.gateway.conftest import Account, DeadlineRecorder, Scan, Worker, extra_server
from tests.support import eventually, rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub


async def run(gw: Stub, account: Account, scan: Scan) -> task_pb2.Task:
    return await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=account.md)


async def test_the_stream_relays_every_event_in_order_and_ends_when_the_runtime_ends_it(
    gw: Stub, alice: Account, scan: Scan, worker: Worker
) -> None:
    task = await run(gw, alice, scan)
    call = gw.StreamTask(pb.StreamTaskRequest(task_id=task.task_id), metadata=alice.md)
    claimed = await worker.claim(scan.agent_id)
    await worker.say(claimed, "one", "two")
    await worker.finish(claimed, pages=3)
    events = [e async for e in call]
    # created, plan seeded, claimed, two messages, finished
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.type for e in events[:3]] == [
        task_pb2.EVENT_TYPE_STATUS,
        task_pb2.EVENT_TYPE_PLAN,
        task_pb2.EVENT_TYPE_STATUS,
    ]
    assert [e.content_text for e in events[3:5]] == ["one", "two"]
    assert events[-1].metadata["status"] == "finished"
    assert await call.code() == grpc.StatusCode.OK
    # Resuming after a seq replays from there; after the last one the stream ends at once.
    tail = gw.StreamTask(pb.StreamTaskRequest(task_id=task.task_id, after_seq=4), metadata=alice.md)
    assert [e.seq async for e in tail] == [5, 6]
    assert [
        e async for e in gw.StreamTask(pb.StreamTaskRequest(task_id=task.task_id, after_seq=6), metadata=alice.md)
    ] == []


async def test_a_runtime_error_reaches_the_client_unchanged(gw: Stub, alice: Account) -> None:
    async def drain() -> None:
        async for _ in gw.StreamTask(
            pb.StreamTaskRequest(task_id="00000000-0000-4000-8000-000000000000"), metadata=alice.md
        ):
            pass

    missing = await rpc_error(drain())
    assert (missing.code, missing.domain, missing.reason) == (
        grpc.StatusCode.NOT_FOUND,
        "nexus.runtime.v1",
        "TASK_NOT_FOUND",
    )


def runtime_stream_ends(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.rpc["code"]  # type: ignore[attr-defined]
        for r in records
        if getattr(r, "rpc", {}).get("service") == "runtime" and r.rpc["method"].endswith("/StreamTaskEvents")  # type: ignore[attr-defined]
    ]


async def test_a_client_cancel_reaches_the_runtime(
    gw: Stub, alice: Account, scan: Scan, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus.rpc")
    task = await run(gw, alice, scan)
    call = gw.StreamTask(pb.StreamTaskRequest(task_id=task.task_id), metadata=alice.md)
    first = await call.read()
    assert isinstance(first, task_pb2.TaskEvent) and first.seq == 1
    assert runtime_stream_ends(caplog.records) == []  # the runtime's stream is open
    call.cancel()
    await eventually(lambda: runtime_stream_ends(caplog.records), "the runtime's stream to end")
    assert runtime_stream_ends(caplog.records) == ["CANCELLED"]


# -- deadlines ------------------------------------------------------------------------------------


def test_the_downstream_timeout_is_the_remaining_time_capped() -> None:
    assert downstream_timeout(None, UNARY_CAP_S) == UNARY_CAP_S
    assert downstream_timeout(3.0, UNARY_CAP_S) == 3.0
    assert downstream_timeout(3600.0, UNARY_CAP_S) == UNARY_CAP_S
    assert downstream_timeout(-1.0, UNARY_CAP_S) == 0.0
    assert downstream_timeout(None, None) is None
    assert downstream_timeout(3600.0, None) == 3600.0


# gRPC carries a timeout in coarse units on the wire, so the receiving side may see a little more.
SLACK = 0.2


@pytest.fixture(scope="module")
async def observed(
    settings: Settings, gw: Stub, open_channel: Callable[[str], grpc.aio.Channel]
) -> AsyncIterator[tuple[Any, DeadlineRecorder]]:
    """A gateway whose runtime records the deadline of every call it receives."""
    recorder = DeadlineRecorder()
    async with extra_server("runtime", settings, interceptors=[recorder]) as runtime:
        gateway_settings = settings.with_overrides(addresses={"runtime": runtime.address})
        async with extra_server("gateway", gateway_settings) as gateway:
            yield pb_grpc.GatewayServiceStub(open_channel(gateway.address)), recorder


async def test_unary_calls_get_the_callers_remaining_time_at_most_the_cap(
    observed: tuple[Any, DeadlineRecorder], alice: Account, scan: Scan
) -> None:
    gw, recorder = observed
    task = await gw.RunCommand(
        pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md, timeout=4
    )
    (create,) = recorder.seen["CreateTask"]
    assert create is not None and 0 < create <= 4 + SLACK
    get = pb.GetTaskRequest(task_id=task.task_id)
    await gw.GetTask(get, metadata=alice.md, timeout=600)
    await gw.GetTask(get, metadata=alice.md)
    long, unset = recorder.seen["GetTask"]
    assert long is not None and UNARY_CAP_S - 2 < long <= UNARY_CAP_S + SLACK
    assert unset is not None and UNARY_CAP_S - 2 < unset <= UNARY_CAP_S + SLACK


async def test_a_stream_gets_the_callers_deadline_or_none(
    observed: tuple[Any, DeadlineRecorder], alice: Account, scan: Scan
) -> None:
    gw, recorder = observed
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md)
    request = pb.StreamTaskRequest(task_id=task.task_id)

    async def drain(call: Any) -> list[int]:
        return [e.seq async for e in call]

    expired = await rpc_error(drain(gw.StreamTask(request, metadata=alice.md, timeout=0.5)))
    assert expired.code == grpc.StatusCode.DEADLINE_EXCEEDED
    call = gw.StreamTask(request, metadata=alice.md)
    assert (await call.read()).seq == 1
    call.cancel()
    bounded, unbounded = recorder.seen["StreamTaskEvents"]
    assert bounded is not None and 0 < bounded <= 0.5 + SLACK
    assert unbounded is None  # a watch lasts as long as the task; the client's cancel ends it
