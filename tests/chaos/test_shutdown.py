"""SIGTERM of a runtime replica in the middle of a burst of appends: every call the replica
received is answered OK (and stored) or UNAVAILABLE (and not stored), never CANCELLED."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc

from nexus.kit.config import Settings
from nexus.runtime.v1 import runtime_pb2
from tests.chaos.conftest import create_tasks, in_background, keyed, stored_events, stub_at
from tests.conftest import free_port
from tests.support import Tokens, eventually, server_process

CHANNELS = 4
CLIENTS = 200
TASKS = 8


async def test_appends_around_a_sigterm_are_ok_and_stored_or_unavailable_and_not_stored(
    chaos_settings: Settings, chaos_tokens: Tokens, agent: str
) -> None:
    """200 clients on 4 connections append back to back (each stops at its first failure) while
    the replica gets SIGTERM; grpc.aio's own stop answered such calls CANCELLED."""
    _, user = chaos_tokens.user()
    answers: dict[tuple[str, str], grpc.StatusCode] = {}  # (task, client key) → status code
    acked = 0
    async with server_process("runtime", chaos_settings, free_port()) as replica:
        channels = [grpc.aio.insecure_channel(replica.address) for _ in range(CHANNELS)]
        try:
            stubs = [stub_at(channel) for channel in channels]
            tasks = await create_tasks(stubs[0], user, agent, TASKS)

            async def client(i: int) -> None:
                nonlocal acked
                task_id, stub = tasks[i % TASKS], stubs[i % CHANNELS]
                for n in range(1_000_000):
                    key = f"c{i}-{n}"
                    request = runtime_pb2.AppendTaskEventsRequest(task_id=task_id, events=[keyed(key, key)])
                    try:
                        await stub.AppendTaskEvents(request, metadata=user, timeout=30)
                    except grpc.aio.AioRpcError as err:
                        answers[task_id, key] = err.code()
                        return
                    answers[task_id, key] = grpc.StatusCode.OK
                    acked += 1

            async with in_background(client(i) for i in range(CLIENTS)) as clients:
                await eventually(lambda: acked >= 1000, "the clients to be in full swing")
                replica.terminate()
                await asyncio.gather(*clients)
            assert await replica.exited() == 0
        finally:
            for channel in channels:
                await channel.close()
    codes = Counter(code.name for code in answers.values())
    assert set(codes) == {"OK", "UNAVAILABLE"}, codes
    # Read back through a fresh replica: what was acknowledged is stored, what was refused is not.
    async with (
        server_process("runtime", chaos_settings, free_port()) as fresh,
        grpc.aio.insecure_channel(fresh.address) as channel,
    ):
        stored = {
            (task_id, event.client_key)
            for task_id in tasks
            for event in await stored_events(stub_at(channel), user, task_id)
            if event.client_key
        }
    assert {answer for answer, code in answers.items() if code == grpc.StatusCode.OK} == stored
