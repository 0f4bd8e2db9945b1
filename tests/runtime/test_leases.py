"""Worker leases: exclusive claims, renewal, expiry with a system event, holder-only writes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.runtime.conftest import Metadata, all_events, append, claim_one, create_task, message, said
from tests.support import Tokens, eventually, rpc_error


def claim_request(agent: str, n: int, lease_s: float = 30.0) -> runtime_pb2.ClaimTasksRequest:
    request = runtime_pb2.ClaimTasksRequest(agent_ids=[agent], max_tasks=n)
    request.lease_duration.FromNanoseconds(int(lease_s * 1e9))
    return request


async def test_concurrent_claimers_never_get_the_same_task(
    stub: Any, owner: tuple[str, Metadata], tokens: Tokens, agent: str
) -> None:
    _, user = owner
    created = {(await create_task(stub, user, agent)).task_id for _ in range(12)}
    workers = [tokens.service("runtime.worker", name=f"claimer-{i}") for i in range(6)]
    replies = await asyncio.gather(*[stub.ClaimTasks(claim_request(agent, 3), metadata=w) for w in workers])
    claimed = [c.task.task_id for r in replies for c in r.claimed]
    assert len(claimed) == len(set(claimed)) == 12
    assert set(claimed) == created
    assert all(c.task.status == task_pb2.TASK_STATUS_RUNNING for r in replies for c in r.claimed)
    again = await stub.ClaimTasks(claim_request(agent, 5), metadata=workers[0])
    assert list(again.claimed) == []


async def test_an_expired_lease_requeues_the_task_with_a_system_event_and_it_can_be_reclaimed(
    stub: Any, owner: tuple[str, Metadata], tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    first = tokens.service("runtime.worker", name="slow")
    second = tokens.service("runtime.worker", name="fast")
    claimed = await claim_one(stub, first, agent, lease_s=0.3)

    async def requeued() -> bool:
        reread = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user)
        return bool(reread.status == task_pb2.TASK_STATUS_QUEUED)

    await eventually(requeued, "the reaper (every 0.5 s) to requeue the expired lease")
    events = await all_events(stub, user, task.task_id)
    assert events[-1].role == task_pb2.EVENT_ROLE_SYSTEM and events[-1].metadata["reason"] == "lease_expired"
    # The old holder can no longer write; the new one can.
    failure = await rpc_error(append(stub, first, task.task_id, said("late"), lease_id=claimed.lease.lease_id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")
    reclaimed = await claim_one(stub, second, agent)
    assert reclaimed.task.task_id == task.task_id and reclaimed.lease.lease_id != claimed.lease.lease_id
    await append(stub, second, task.task_id, said("on it"), lease_id=reclaimed.lease.lease_id)


async def test_a_claim_reclaims_an_expired_lease_without_waiting_for_the_reaper(
    stub: Any, owner: tuple[str, Metadata], tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    gone = await claim_one(stub, tokens.service("runtime.worker", name="gone"), agent, lease_s=0.1)
    expiry = gone.lease.expire_time.ToNanoseconds() / 1e9
    await eventually(lambda: time.time() > expiry, "the lease to expire")
    reclaimed = await claim_one(stub, tokens.service("runtime.worker", name="next"), agent)
    assert reclaimed.task.task_id == task.task_id
    reasons = [e.metadata["reason"] for e in await all_events(stub, user, task.task_id)]
    assert reasons == ["created", "claimed", "lease_expired", "claimed"]


async def test_renewing_keeps_the_lease_past_its_first_expiry(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent, lease_s=0.4)
    request = runtime_pb2.RenewLeaseRequest(task_id=task.task_id, lease_id=claimed.lease.lease_id)
    request.lease_duration.FromSeconds(30)
    for _ in range(3):
        lease = await stub.RenewLease(request, metadata=worker)
        await asyncio.sleep(0.25)  # the behaviour under test: time passes beyond the first expiry
    assert lease.expire_time.ToNanoseconds() > claimed.lease.expire_time.ToNanoseconds()
    await append(stub, worker, task.task_id, said("still mine"), lease_id=claimed.lease.lease_id)


async def test_only_the_lease_holder_may_drive_the_task(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    # Before any claim, no worker holds the task.
    failure = await rpc_error(
        append(stub, worker, task.task_id, said("x"), lease_id="00000000-0000-4000-8000-000000000000")
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")
    claimed = await claim_one(stub, worker, agent)
    lease = claimed.lease.lease_id
    intruder = tokens.service("runtime.worker", name="intruder")
    tid = task.task_id
    refused = [
        append(stub, intruder, tid, said("x"), lease_id=lease),  # the right lease id, the wrong worker
        append(stub, worker, tid, said("x"), lease_id="00000000-0000-4000-8000-000000000000"),
        stub.FinishTask(runtime_pb2.FinishTaskRequest(task_id=tid, lease_id=lease), metadata=intruder),
        stub.FailTask(
            runtime_pb2.FailTaskRequest(task_id=tid, lease_id=lease, error=task_pb2.TaskError(reason="X")),
            metadata=intruder,
        ),
        stub.RequestInput(
            runtime_pb2.RequestInputRequest(task_id=tid, lease_id=lease, question=said("?")), metadata=intruder
        ),
        stub.RenewLease(runtime_pb2.RenewLeaseRequest(task_id=tid, lease_id=lease), metadata=intruder),
    ]
    for call in refused:
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")
    # The owner speaks as the user only, and may not move the state of a running task.
    failure = await rpc_error(append(stub, user, tid, said("pretending")))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and failure.fields == {"events[0].role"}
    failure = await rpc_error(
        stub.ProvideInput(runtime_pb2.ProvideInputRequest(task_id=tid, answer=message("a")), metadata=user)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")
    failed = await stub.FailTask(
        runtime_pb2.FailTaskRequest(
            task_id=tid, lease_id=lease, error=task_pb2.TaskError(reason="SITE_DOWN", message="acme.com is down")
        ),
        metadata=worker,
    )
    assert failed.status == task_pb2.TASK_STATUS_FAILED and failed.error.reason == "SITE_DOWN"
    failure = await rpc_error(
        stub.FinishTask(runtime_pb2.FinishTaskRequest(task_id=tid, lease_id=lease), metadata=worker)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TASK_ENDED")


async def test_asking_and_answering_moves_the_task_through_waiting_input_and_back_to_queued(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    waiting = await stub.RequestInput(
        runtime_pb2.RequestInputRequest(
            task_id=task.task_id, lease_id=claimed.lease.lease_id, question=said("Which url?")
        ),
        metadata=worker,
    )
    assert waiting.status == task_pb2.TASK_STATUS_WAITING_INPUT
    # The lease was released with the question.
    failure = await rpc_error(append(stub, worker, task.task_id, said("x"), lease_id=claimed.lease.lease_id))
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    queued = await stub.ProvideInput(
        runtime_pb2.ProvideInputRequest(task_id=task.task_id, answer=message("https://acme.com")), metadata=user
    )
    assert queued.status == task_pb2.TASK_STATUS_QUEUED
    again = await claim_one(stub, worker, agent)
    done = await stub.FinishTask(
        runtime_pb2.FinishTaskRequest(task_id=task.task_id, lease_id=again.lease.lease_id), metadata=worker
    )
    assert done.status == task_pb2.TASK_STATUS_FINISHED
    events = await all_events(stub, user, task.task_id)
    assert [(e.role, e.content_text) for e in events if e.type == task_pb2.EVENT_TYPE_MESSAGE] == [
        (task_pb2.EVENT_ROLE_ASSISTANT, "Which url?"),
        (task_pb2.EVENT_ROLE_USER, "https://acme.com"),
    ]
    assert [e.metadata["status"] for e in events if e.type == task_pb2.EVENT_TYPE_STATUS] == [
        "queued",
        "running",
        "waiting_input",
        "queued",
        "running",
        "finished",
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
