"""A LISTEN connection whose backend stops answering (while its TCP connection stays up) is
noticed within a few check intervals; the replica reconnects and re-reads its watched tasks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import pytest

from nexus.kit.config import Settings
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc
from tests.runtime.conftest import Metadata, append, create_task, message, replica
from tests.runtime.locks import admin_sql
from tests.support import eventually

CHECK_S = 0.5
# Well inside the hub's 5 s poll, which would otherwise be what delivers.
PROMPT_S = 2.0


async def listeners(settings: Settings) -> set[int]:
    rows = await admin_sql(
        settings,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %%'",
    )
    return {int(pid) for (pid,) in rows}


async def test_a_silent_listen_connection_is_replaced_and_other_replicas_commits_arrive_again(
    stub: Any, owner: tuple[str, Metadata], agent: str, settings: Settings, open_channel: Any
) -> None:
    _, user = owner
    task = (await create_task(stub, user, agent)).task_id
    before = await listeners(settings)
    async with replica(settings, NEXUS_LISTEN_CHECK_S=str(CHECK_S)) as address:
        other = runtime_pb2_grpc.RuntimeServiceStub(open_channel(address))
        theirs: set[int] = set()

        async def listening() -> bool:
            theirs.clear()
            theirs.update(await listeners(settings) - before)
            return len(theirs) == 1

        await eventually(listening, "the other replica's LISTEN connection")
        (silenced,) = theirs
        try:
            os.kill(silenced, 0)
        except (ProcessLookupError, PermissionError):
            pytest.skip("Postgres runs where this test cannot signal its backends")
        received: list[int] = []
        stream = other.StreamTaskEvents(runtime_pb2.StreamTaskEventsRequest(task_id=task, after_seq=0), metadata=user)

        async def follow() -> None:
            async for event in stream:
                received.append(event.seq)

        reader = asyncio.ensure_future(follow())
        try:

            async def replayed() -> bool:
                return received == [1]

            await eventually(replayed, "the stream on the other replica to replay")
            os.kill(silenced, signal.SIGSTOP)
            # Committed while nobody listens for the other replica: found by the re-read.
            await append(stub, user, task, message("while silent"))

            async def replaced() -> bool:
                return bool(await listeners(settings) - before - {silenced})

            await eventually(replaced, "a new LISTEN connection", within_s=10)
            for seq in range(2, 6):
                if seq > 2:
                    await append(stub, user, task, message("after"))

                async def arrived(seq: int = seq) -> bool:
                    return seq in received

                await eventually(arrived, f"seq {seq} on the other replica", within_s=PROMPT_S)
            assert received == [1, 2, 3, 4, 5]
        finally:
            os.kill(silenced, signal.SIGCONT)
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
