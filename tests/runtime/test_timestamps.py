"""Times are taken once the task's row lock is held, not when the transaction began: an event's
create_time never decreases along its task's seqs, and a lease lasts its full term from the
moment it is granted."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from nexus.kit.config import Settings
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc, task_pb2
from tests.runtime.conftest import Metadata, all_events, append, claim_one, create_task, message, said
from tests.runtime.locks import admin_sql, lock_waiters, row_locked
from tests.support import eventually


def times(events: list[task_pb2.TaskEvent]) -> list[int]:
    return [e.create_time.ToNanoseconds() for e in events]


async def test_an_append_that_waited_for_a_lock_is_stamped_after_the_events_committed_meanwhile(
    stub: Any, owner: tuple[str, Metadata], agent: str, settings: Settings, second_replica: str, open_channel: Any
) -> None:
    """A group waits for one task's row; meanwhile another replica appends to a second task of
    the group. The group's event on that task comes after, so its time must not be earlier."""
    _, user = owner
    other = runtime_pb2_grpc.RuntimeServiceStub(open_channel(second_replica))
    first, second = sorted([(await create_task(stub, user, agent)).task_id for _ in range(2)])
    busy = (await create_task(stub, user, agent)).task_id
    async with row_locked(settings, first):
        # While the lane commits a large batch, the next calls gather into one group.
        large = append(stub, user, busy, *[message("x" * 1000) for _ in range(500)])
        group = [
            asyncio.ensure_future(call)
            for call in [large, *[append(stub, user, t, message("grouped")) for t in [first, second, second, second]]]
        ]

        async def waiting() -> bool:
            return await lock_waiters(settings) > 0

        await eventually(waiting, "the group to wait for the locked row")
        await append(other, user, second, message("from the other replica"))
    await asyncio.wait_for(asyncio.gather(*group), 15)
    for task_id in (first, second):
        events = await all_events(stub, user, task_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert times(events) == sorted(times(events)), task_id


async def test_create_times_follow_seqs_with_many_writers_on_both_replicas(
    stub: Any,
    owner: tuple[str, Metadata],
    worker: Metadata,
    agent: str,
    second_replica: str,
    open_channel: Any,
) -> None:
    _, user = owner
    other = runtime_pb2_grpc.RuntimeServiceStub(open_channel(second_replica))
    task = (await create_task(stub, user, agent)).task_id
    lease = (await claim_one(stub, worker, agent)).lease.lease_id
    rng = random.Random(7)

    async def writer(n: int) -> None:
        replica = (stub, other)[n % 2]
        for i in range(15):
            batch = [said(f"w{n}-{i}-{j}") for j in range(rng.randint(1, 3))]
            await append(replica, worker, task, *batch, lease_id=lease)

    await asyncio.gather(*[writer(n) for n in range(8)])
    await stub.FinishTask(runtime_pb2.FinishTaskRequest(task_id=task, lease_id=lease), metadata=worker)
    events = await all_events(stub, user, task)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert times(events) == sorted(times(events))


async def test_a_renewal_that_waited_for_the_row_lasts_its_term_from_when_it_was_granted(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str, settings: Settings
) -> None:
    _, user = owner
    task = (await create_task(stub, user, agent)).task_id
    claimed = await claim_one(stub, worker, agent)
    term_s = 2.0
    request = runtime_pb2.RenewLeaseRequest(task_id=task, lease_id=claimed.lease.lease_id)
    request.lease_duration.FromNanoseconds(int(term_s * 1e9))
    async with row_locked(settings, task):
        renewal = asyncio.ensure_future(stub.RenewLease(request, metadata=worker))

        async def waited_longer_than_the_term() -> bool:
            rows = await admin_sql(
                settings,
                "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0)"
                " FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            return float(rows[0][0]) > term_s + 0.5

        await eventually(waited_longer_than_the_term, "the renewal to wait longer than its term")
    renewed = await asyncio.wait_for(renewal, 15)
    ((database_now,),) = await admin_sql(settings, "SELECT clock_timestamp()")
    assert renewed.expire_time.ToDatetime(tzinfo=database_now.tzinfo) > database_now
    # The lease is live: its holder can still write.
    await append(stub, worker, task, said("still mine"), lease_id=claimed.lease.lease_id)


async def test_a_lease_starts_at_its_claims_event_and_expiry_comes_between_the_claims(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = (await create_task(stub, user, agent)).task_id
    first = await claim_one(stub, worker, agent, lease_s=0.2)

    async def requeued() -> bool:
        got = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task), metadata=user)
        return bool(got.status == task_pb2.TASK_STATUS_QUEUED)

    await eventually(requeued, "the lease reaper")
    second = await claim_one(stub, worker, agent, lease_s=30)
    events = await all_events(stub, user, task)
    assert [e.metadata["reason"] for e in events] == ["created", "claimed", "lease_expired", "claimed"]
    assert times(events) == sorted(times(events))
    for claimed, event, term_s in ((first, events[1], 0.2), (second, events[3], 30)):
        granted = event.create_time.ToNanoseconds()
        assert claimed.lease.expire_time.ToNanoseconds() == granted + int(term_s * 1e9)
