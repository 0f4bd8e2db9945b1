"""Postgres restarts (fast: connections are terminated; immediate: the server is killed and
recovers from its WAL) while two runtime replicas take appends and serve streams: no
acknowledged event is lost or doubled, and every stream resumes exactly, each event once and in
seq order, including events committed on the other replica (LISTEN reconnects)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from nexus.kit.config import Settings
from tests.chaos.conftest import Reader, Writer, cancel_tasks, create_tasks, in_background, stored_events, stub_at
from tests.conftest import free_port
from tests.support import PrivatePostgres, Tokens, eventually, server_process

TASKS = 4
READERS_PER_TASK = 4
WRITERS_PER_TASK = 3
# Half the readers hang up after this many events and resume at once, so that some streams are
# (re)opened while the database is down.
HANG_UP_EVERY = 7


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_postgres_restart_loses_no_acknowledged_event_and_streams_resume_exactly(
    mode: str, chaos_postgres: PrivatePostgres, chaos_settings: Settings, chaos_tokens: Tokens, agent: str
) -> None:
    _, user = chaos_tokens.user()
    async with (
        server_process("runtime", chaos_settings, free_port()) as one,
        server_process("runtime", chaos_settings, free_port()) as other,
        grpc.aio.insecure_channel(one.address) as to_one,
        grpc.aio.insecure_channel(other.address) as to_other,
    ):
        stubs = [stub_at(to_one), stub_at(to_other)]
        tasks = await create_tasks(stubs[0], user, agent, TASKS)
        # Each task is written through one replica and read on both, so streams depend on
        # notifications from the other replica as well as on their own replica's commits.
        readers = [
            Reader(stubs, user, task_id, first=i, hang_up_every=HANG_UP_EVERY * (i % 2))
            for task_id in tasks
            for i in range(READERS_PER_TASK)
        ]
        writers = [
            Writer([stubs[n % 2]], user, t, f"w{i}") for n, t in enumerate(tasks) for i in range(WRITERS_PER_TASK)
        ]

        def acked() -> int:
            return sum(len(w.acked) for w in writers)

        async with (
            in_background(r.run() for r in readers) as reading,
            in_background(w.run() for w in writers) as writing,
        ):
            await eventually(lambda: acked() >= 300, "the writers to be in full swing")
            await chaos_postgres.restart(mode)
            after_restart = acked()
            await eventually(lambda: acked() >= after_restart + 300, "appends to succeed again after the restart")
            for writer in writers:
                writer.stopping = True
            await asyncio.gather(*writing)
            await cancel_tasks(stubs[0], user, tasks)
            await asyncio.wait_for(asyncio.gather(*reading), 60)
        stored = {t: await stored_events(stubs[1], user, t) for t in tasks}
    assert sum(w.retries for w in writers) > 0  # the restart did fail some appends
    for reader in readers:
        assert reader.seen == [e.seq for e in stored[reader.task_id]] == list(range(1, len(reader.seen) + 1))
    for writer in writers:
        keys = {e.client_key: e.seq for e in stored[writer.task_id] if e.client_key.startswith(f"{writer.name}-")}
        assert keys == writer.acked
