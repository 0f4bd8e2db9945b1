"""Streams: replay then live, exactly once and in order from any point, across replicas; they end
when the task does; many subscribers of a task share one read per new event."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc
from services.runtime.domain.events import NewEvent
from services.runtime.domain.tasks import Actor
from services.runtime.hub import Hub
from services.runtime.store.events import EventLog
from services.runtime.store.notify import Listener
from tests.runtime.conftest import Metadata, append, claim_one, collect, create_task, message, said


async def finish(stub: Any, worker: Metadata, task_id: str, lease_id: str) -> None:
    await stub.FinishTask(runtime_pb2.FinishTaskRequest(task_id=task_id, lease_id=lease_id), metadata=worker)


async def test_streams_resumed_at_random_points_get_each_event_once_in_order(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    lease = claimed.lease.lease_id
    rng = random.Random(4)

    async def producer() -> None:
        for i in range(30):
            await append(
                stub, worker, task.task_id, *[said(f"e{i}.{j}") for j in range(rng.randint(1, 4))], lease_id=lease
            )
            if i % 5 == 0:
                await asyncio.sleep(0.01)
        await finish(stub, worker, task.task_id, lease)

    async def resuming_reader(seed: int) -> list[int]:
        """Reads a few events, hangs up, resumes from the last seq seen; repeats to the end."""
        local = random.Random(seed)
        seen: list[int] = []
        after = local.randint(0, 10)
        start = after
        while True:
            call = stub.StreamTaskEvents(
                runtime_pb2.StreamTaskEventsRequest(task_id=task.task_id, after_seq=after), metadata=user
            )
            budget = local.randint(1, 15)
            ended = True
            async for event in call:
                seen.append(event.seq)
                after = event.seq
                budget -= 1
                if budget == 0:
                    ended = False
                    call.cancel()
                    break
            if ended:
                assert seen == list(range(start + 1, start + 1 + len(seen)))
                return seen

    readers = [asyncio.ensure_future(resuming_reader(s)) for s in range(8)]
    await producer()
    results = await asyncio.wait_for(asyncio.gather(*readers), 30)
    final = (await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user)).last_seq
    for seen in results:
        assert seen[-1] == final


async def test_a_stream_ends_when_the_task_becomes_terminal_and_after_it_at_once(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    live = asyncio.ensure_future(collect(stub, user, task.task_id))
    claimed = await claim_one(stub, worker, agent)
    await append(stub, worker, task.task_id, said("done soon"), lease_id=claimed.lease.lease_id)
    await asyncio.sleep(0.05)
    assert not live.done()
    await finish(stub, worker, task.task_id, claimed.lease.lease_id)
    events = await asyncio.wait_for(live, 5)
    assert events[-1].metadata["status"] == "finished" and [e.seq for e in events] == [1, 2, 3, 4]
    # Replaying a finished task ends after its last event; resuming after it ends at once.
    assert len(await asyncio.wait_for(collect(stub, user, task.task_id, after_seq=2), 5)) == 2
    assert await asyncio.wait_for(collect(stub, user, task.task_id, after_seq=4), 5) == []


async def test_cancelling_ends_every_open_stream(stub: Any, owner: tuple[str, Metadata], agent: str) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    streams = [asyncio.ensure_future(collect(stub, user, task.task_id, after_seq=1)) for _ in range(5)]
    await asyncio.sleep(0.1)
    await stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=task.task_id), metadata=user)
    for events in await asyncio.wait_for(asyncio.gather(*streams), 5):
        assert [e.metadata["status"] for e in events] == ["cancelled"]


async def test_append_through_one_replica_and_stream_from_the_other(
    stub: Any,
    owner: tuple[str, Metadata],
    worker: Metadata,
    agent: str,
    second_replica: str,
    open_channel: Any,
) -> None:
    _, user = owner
    other = runtime_pb2_grpc.RuntimeServiceStub(open_channel(second_replica))
    task = await create_task(stub, user, agent)
    here = asyncio.ensure_future(collect(stub, user, task.task_id))
    there = asyncio.ensure_future(collect(other, user, task.task_id))
    await asyncio.sleep(0.2)
    claimed = await claim_one(other, worker, agent)
    lease = claimed.lease.lease_id
    for i in range(20):
        replica = stub if i % 2 else other
        await append(replica, worker, task.task_id, said(f"m{i}"), lease_id=lease)
    await append(stub, user, task.task_id, message("thanks"))
    await finish(stub, worker, task.task_id, lease)
    expected = list(range(1, 25))
    for events in await asyncio.wait_for(asyncio.gather(here, there), 15):
        assert [e.seq for e in events] == expected
        assert events[-1].metadata["status"] == "finished"


class CountingLog(EventLog):
    """The real event log, counting its reads."""

    reads = 0

    async def read(self, task_id: str, after_seq: int, limit: int, before_seq: int = 0) -> list[Any]:
        self.reads += 1
        return await super().read(task_id, after_seq, limit, before_seq)


async def test_many_subscribers_of_a_task_share_one_read_per_new_event(
    stub: Any, settings: Settings, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    """A hub with its own log and LISTEN connection stands in for a replica that did not commit
    the events: it learns of them only by notification."""
    user_id, user = owner
    url = service_url(settings, "runtime", driver="postgresql")
    log = CountingLog(url)
    hub = Hub(log)
    listener = Listener(url, on_hint=hub.hint, on_reconnect=hub.rescan)
    await listener.start()
    try:
        task = await create_task(stub, user, agent)
        subscribers = 40

        async def subscriber() -> list[int]:
            return [e.seq async for e in hub.follow(Actor(user_id=user_id), task.task_id, 0)]

        streams = [asyncio.ensure_future(subscriber()) for _ in range(subscribers)]
        await asyncio.sleep(0.2)
        replay_reads = log.reads
        claimed = await claim_one(stub, worker, agent)
        appends = 15
        for i in range(appends):
            await append(stub, worker, task.task_id, said(f"m{i}"), lease_id=claimed.lease.lease_id)
            await asyncio.sleep(0.01)
        await finish(stub, worker, task.task_id, claimed.lease.lease_id)
        for seqs in await asyncio.wait_for(asyncio.gather(*streams), 10):
            assert seqs == list(range(1, appends + 4))
        live_reads = log.reads - replay_reads
        # One read per commit (claim, appends, finish), however many subscribers.
        assert live_reads <= appends + 2 + 2, live_reads
    finally:
        await listener.stop()
        hub.close()
        await log.stop()


async def test_events_this_process_commits_reach_its_streams_without_a_read(
    stub: Any, settings: Settings, owner: tuple[str, Metadata], agent: str
) -> None:
    """A replica's own commits are handed to its feeds directly. Its LISTEN connection also
    receives each commit's notification, often before the commit's reply; that must not cost a
    read of the table."""
    user_id, user = owner
    url = service_url(settings, "runtime", driver="postgresql")
    log = CountingLog(url)
    hub = Hub(log)
    log.attach(hub)
    listener = Listener(url, on_hint=hub.hint, on_reconnect=hub.rescan)
    await log.start()
    await listener.start()
    try:
        task = await create_task(stub, user, agent)
        appends = 30
        seen: list[int] = []
        live = asyncio.Event()

        async def subscriber() -> None:
            async for event in hub.follow(Actor(user_id=user_id), task.task_id, 0):
                seen.append(event.seq)
                live.set()  # the replay of seq 1 is done: the feed is live
                if event.seq == 1 + appends:
                    return

        stream = asyncio.ensure_future(subscriber())
        await asyncio.wait_for(live.wait(), 10)
        before = log.reads
        for i in range(appends):
            await log.append(Actor(user_id=user_id), task.task_id, [NewEvent("user", "message", f"m{i}", None, {})])
        await asyncio.wait_for(stream, 10)
        await asyncio.sleep(0.3)  # late notifications have arrived and been weighed
        assert seen == list(range(1, appends + 2))
        assert log.reads == before
    finally:
        await listener.stop()
        hub.close()
        await log.stop()


async def test_a_group_too_large_to_name_in_one_notification_still_wakes_other_replicas(
    stub: Any, settings: Settings, owner: tuple[str, Metadata], agent: str
) -> None:
    """More tasks than fit in a notification's 8000 bytes: the notification says "re-read
    everything", and a stream on another replica still gets its event."""
    user_id, user = owner
    url = service_url(settings, "runtime", driver="postgresql")
    tasks = await asyncio.gather(*[create_task(stub, user, agent) for _ in range(250)])
    writer = EventLog(url)  # a replica that commits, without local subscribers
    reader_log = EventLog(url)
    hub = Hub(reader_log)
    listener = Listener(url, on_hint=hub.hint, on_reconnect=hub.rescan)
    await writer.start()
    await listener.start()
    try:
        watched = tasks[-1].task_id
        stream = hub.follow(Actor(user_id=user_id), watched, 1)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.2)
        event = NewEvent(role="user", type="message", content_text="hi", render_payload=None, metadata={})
        actor = Actor(user_id=user_id)
        await asyncio.gather(*[writer.append(actor, t.task_id, [event]) for t in tasks])
        received = await asyncio.wait_for(first, 10)
        assert (received.seq, received.content_text) == (2, "hi")
        await stream.aclose()
    finally:
        await listener.stop()
        hub.close()
        await writer.stop()
        await reader_log.stop()
