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
from tests.runtime.conftest import Metadata, append, claim_one, collect, create_task, follow, message, said
from tests.support import eventually


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
                await asyncio.sleep(0.01)  # paced, so readers resume while it still writes
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
    live = follow(stub, user, task.task_id)
    claimed = await claim_one(stub, worker, agent)
    await append(stub, worker, task.task_id, said("done soon"), lease_id=claimed.lease.lease_id)
    await eventually(lambda: len(live.events) == 3, "the stream to deliver the appended event")
    assert not live.done.done()
    await finish(stub, worker, task.task_id, claimed.lease.lease_id)
    events = await asyncio.wait_for(live.done, 5)
    assert events[-1].metadata["status"] == "finished" and [e.seq for e in events] == [1, 2, 3, 4]
    # Replaying a finished task ends after its last event; resuming after it ends at once.
    assert len(await asyncio.wait_for(collect(stub, user, task.task_id, after_seq=2), 5)) == 2
    assert await asyncio.wait_for(collect(stub, user, task.task_id, after_seq=4), 5) == []


async def test_cancelling_ends_every_open_stream(stub: Any, owner: tuple[str, Metadata], agent: str) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    # A stream that has replayed seq 1 is live: it subscribed before it read the table.
    streams = [follow(stub, user, task.task_id) for _ in range(5)]
    await eventually(lambda: all(s.events for s in streams), "every stream to be live")
    await stub.CancelTask(runtime_pb2.CancelTaskRequest(task_id=task.task_id), metadata=user)
    for events in await asyncio.wait_for(asyncio.gather(*[s.done for s in streams]), 5):
        assert [e.metadata["status"] for e in events[1:]] == ["cancelled"]


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
    here, there = follow(stub, user, task.task_id), follow(other, user, task.task_id)
    await eventually(lambda: here.events and there.events, "both streams to be live")
    claimed = await claim_one(other, worker, agent)
    lease = claimed.lease.lease_id
    for i in range(20):
        replica = stub if i % 2 else other
        await append(replica, worker, task.task_id, said(f"m{i}"), lease_id=lease)
    await append(stub, user, task.task_id, message("thanks"))
    await finish(stub, worker, task.task_id, lease)
    expected = list(range(1, 25))
    for events in await asyncio.wait_for(asyncio.gather(here.done, there.done), 15):
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

        async def subscriber(seqs: list[int]) -> list[int]:
            async for event in hub.follow(Actor(user_id=user_id), task.task_id, 0):
                seqs.append(event.seq)
            return seqs

        seen: list[list[int]] = [[] for _ in range(subscribers)]
        streams = [asyncio.ensure_future(subscriber(seqs)) for seqs in seen]
        await eventually(lambda: all(seen), "every subscriber to have replayed seq 1")
        replay_reads = log.reads
        claimed = await claim_one(stub, worker, agent)
        appends = 15
        for i in range(appends):
            await append(stub, worker, task.task_id, said(f"m{i}"), lease_id=claimed.lease.lease_id)
            await asyncio.sleep(0.01)  # paced: one commit, so one notification, per append
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
        stream = hub.follow(Actor(user_id=user_id), task.task_id, 0)
        seen = [(await asyncio.wait_for(anext(stream), 10)).seq]  # the replay of seq 1: the feed is live
        feed = hub.feed(task.task_id)
        assert feed is not None
        before = log.reads
        for i in range(appends):
            await log.append(Actor(user_id=user_id), task.task_id, [NewEvent("user", "message", f"m{i}", None, {})])
        while seen[-1] < 1 + appends:
            seen.append((await asyncio.wait_for(anext(stream), 10)).seq)
        # The stream stays open (so its feed does) until every commit's notification has come
        # back over LISTEN and been weighed against what the feed already holds.
        await eventually(lambda: feed.hint_seq == 1 + appends, "this replica's own notifications to arrive")
        await stream.aclose()
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

        def waiting() -> bool:
            feed = hub.feed(watched)  # seeded once the stream has read the tail: it now waits
            return feed is not None and feed.read_seq == 1

        await eventually(waiting, "the stream to wait for events after its replay")
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
