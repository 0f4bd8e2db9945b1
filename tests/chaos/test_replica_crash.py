"""SIGKILL of one of two runtime replicas while events are written and streamed: the streams it
served resume on the other replica, each event once and in seq order, and no acknowledged
event is lost."""

from __future__ import annotations

import asyncio

import grpc

from nexus.kit.config import Settings
from tests.chaos.conftest import Reader, Writer, cancel_tasks, create_tasks, in_background, stored_events, stub_at
from tests.conftest import free_port
from tests.support import Tokens, eventually, server_process

TASKS = 4
READERS_PER_TASK = 6
WRITERS_PER_TASK = 3


async def test_streams_of_a_killed_replica_resume_on_the_other_exactly_once(
    chaos_settings: Settings, chaos_tokens: Tokens, agent: str
) -> None:
    _, user = chaos_tokens.user()
    async with (
        server_process("runtime", chaos_settings, free_port()) as doomed,
        server_process("runtime", chaos_settings, free_port()) as survivor,
        grpc.aio.insecure_channel(doomed.address) as to_doomed,
        grpc.aio.insecure_channel(survivor.address) as to_survivor,
    ):
        stubs = [stub_at(to_doomed), stub_at(to_survivor)]
        tasks = await create_tasks(stubs[1], user, agent, TASKS)
        # Readers start on either replica; writers alternate between them.
        readers = [Reader(stubs, user, t, first=i) for t in tasks for i in range(READERS_PER_TASK)]
        writers = [Writer(stubs, user, t, f"w{i}") for t in tasks for i in range(WRITERS_PER_TASK)]

        def acked() -> int:
            return sum(len(w.acked) for w in writers)

        async with (
            in_background(r.run() for r in readers) as reading,
            in_background(w.run() for w in writers) as writing,
        ):
            await eventually(lambda: acked() >= 300, "the writers to be in full swing")
            doomed.kill()
            assert await doomed.exited() == -9
            before = acked()
            await eventually(lambda: acked() >= before + 300, "the writers to carry on through the survivor")
            for writer in writers:
                writer.stopping = True
            await asyncio.gather(*writing)
            await cancel_tasks(stubs[1], user, tasks)
            await asyncio.wait_for(asyncio.gather(*reading), 60)
        stored = {t: await stored_events(stubs[1], user, t) for t in tasks}
    assert sum(r.resumes for r in readers) >= TASKS * READERS_PER_TASK // 2  # the doomed replica's streams
    for reader in readers:
        assert reader.seen == [e.seq for e in stored[reader.task_id]] == list(range(1, len(reader.seen) + 1))
    for writer in writers:
        keys = {e.client_key: e.seq for e in stored[writer.task_id] if e.client_key.startswith(f"{writer.name}-")}
        assert keys == writer.acked
