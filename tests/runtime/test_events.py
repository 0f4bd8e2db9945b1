"""Appends: gapless seqs in commit order under concurrency, idempotent client keys, atomic batches."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import grpc

from nexus.runtime.v1 import runtime_pb2, task_pb2
from tests.runtime.conftest import Metadata, all_events, append, claim_one, create_task, message, said
from tests.support import rpc_error


async def test_concurrent_appenders_on_one_task_get_exactly_one_to_m(
    stub: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)  # seq 2
    lease = claimed.lease.lease_id

    async def appender(n: int) -> list[int]:
        seqs = []
        for i in range(10):
            batch = [message(f"u{n}-{i}-{j}") for j in range(random.randint(1, 3))]
            if n % 2:
                reply = await append(stub, user, task.task_id, *batch)
            else:
                batch = [said(e.content_text) for e in batch]
                reply = await append(stub, worker, task.task_id, *batch, lease_id=lease)
            got = [e.seq for e in reply.events]
            assert got == list(range(got[0], got[0] + len(batch)))  # a batch is contiguous
            seqs += got
        return seqs

    results = await asyncio.gather(*[appender(n) for n in range(12)])
    appended = sorted(s for seqs in results for s in seqs)
    assert appended == list(range(3, 3 + len(appended)))
    stored = await all_events(stub, user, task.task_id)
    assert [e.seq for e in stored] == list(range(1, 3 + len(appended)))
    # Per appender, order of its own appends is preserved (it waited for each).
    for seqs in results:
        assert seqs == sorted(seqs)
    reread = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user)
    assert reread.last_seq == stored[-1].seq


async def test_concurrent_retries_with_the_same_client_key_leave_one_row(
    stub: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    replies = await asyncio.gather(
        *[append(stub, user, task.task_id, message("hi", key="k-1")) for _ in range(20)],
        *[append(stub, user, task.task_id, message(f"other {i}")) for i in range(5)],
    )
    keyed = {(r.events[0].seq, r.events[0].create_time.ToNanoseconds()) for r in replies[:20]}
    assert len(keyed) == 1
    events = await all_events(stub, user, task.task_id)
    assert [e.content_text for e in events].count("hi") == 1
    assert [e.seq for e in events] == list(range(1, 8))
    # Later, in a batch with a new key: the known key answers its first seq, the new one is appended.
    reply = await append(stub, user, task.task_id, message("hi", key="k-1"), message("new", key="k-2"))
    assert [e.seq for e in reply.events] == [next(iter(keyed))[0], 8]
    assert len(await all_events(stub, user, task.task_id)) == 8


async def test_a_batch_is_atomic_and_a_bad_event_rejects_all_of_it(
    stub: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    render = task_pb2.TaskEvent(role=task_pb2.EVENT_ROLE_USER, type=task_pb2.EVENT_TYPE_NEXUS_RENDER)
    render.render_payload.update({"target_zone": "canvas"})
    failure = await rpc_error(append(stub, user, task.task_id, message("ok"), render, message("ok too")))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == {"events[1].render_payload"}
    assert len(await all_events(stub, user, task.task_id)) == 1
    render.render_payload.update({"component": "mobile_previewer", "props": {"url": "https://acme.com"}})
    reply = await append(stub, user, task.task_id, message("ok"), render, message("ok too"))
    assert [e.seq for e in reply.events] == [2, 3, 4]
    stored = await all_events(stub, user, task.task_id)
    assert stored[2].render_payload["component"] == "mobile_previewer"


async def test_appends_bump_last_active_time(stub: Any, owner: tuple[str, Metadata], agent: str) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    await asyncio.sleep(0.01)  # the behaviour under test: an append a moment later moves the time
    await append(stub, user, task.task_id, message("bump"))
    reread = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user)
    assert reread.last_active_time.ToNanoseconds() > task.last_active_time.ToNanoseconds()
    assert reread.last_seq == 2


async def test_event_lists_page_by_sequence_range(stub: Any, owner: tuple[str, Metadata], agent: str) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    await append(stub, user, task.task_id, *[message(f"m{i}") for i in range(20)])
    request = runtime_pb2.ListTaskEventsRequest(task_id=task.task_id, after_seq=5, before_seq=18, page_size=5)
    seqs: list[int] = []
    while True:
        reply = await stub.ListTaskEvents(request, metadata=user)
        seqs += [e.seq for e in reply.events]
        if not reply.next_page_token:
            break
        request.page_token = reply.next_page_token
    assert seqs == list(range(6, 18))


async def test_metadata_carries_the_earlier_message_type(stub: Any, owner: tuple[str, Metadata], agent: str) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    image = message("a photo")
    image.metadata.update({"message_type": "image", "file": {"name": "a.png", "bytes": 1024}})
    await append(stub, user, task.task_id, image)
    stored = (await all_events(stub, user, task.task_id))[-1]
    assert stored.metadata["message_type"] == "image"
    assert stored.metadata.get_or_create_struct("file")["bytes"] == 1024
