"""4,000 concurrent appends to one runtime replica with a budget of 64 calls in flight: each is
answered OK (and stored) or RESOURCE_EXHAUSTED with RetryInfo (and not stored), never CANCELLED,
and the replica serves normally afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import grpc

from nexus.kit import errors
from nexus.kit.config import Settings
from nexus.runtime.v1 import runtime_pb2
from tests.chaos.conftest import create_tasks, keyed, stored_events, stub_at
from tests.conftest import free_port
from tests.support import Tokens, server_process

BURST = 4000
TASKS = 16


async def test_a_burst_of_appends_past_the_budget_is_refused_with_retry_info_never_cancelled(
    chaos_settings: Settings, chaos_tokens: Tokens, agent: str
) -> None:
    _, user = chaos_tokens.user()
    settings = replace(chaos_settings, max_inflight_calls=64, retry_after_s=0.5)
    async with (
        server_process("runtime", settings, free_port()) as replica,
        grpc.aio.insecure_channel(replica.address) as channel,
    ):
        stub = stub_at(channel)
        tasks = await create_tasks(stub, user, agent, TASKS)

        async def append(n: int) -> tuple[str, str, grpc.StatusCode, float | None]:
            task_id, key = tasks[n % TASKS], f"burst-{n}"
            request = runtime_pb2.AppendTaskEventsRequest(task_id=task_id, events=[keyed(key, key)])
            try:
                await stub.AppendTaskEvents(request, metadata=user, timeout=60)
            except grpc.aio.AioRpcError as err:
                return task_id, key, err.code(), errors.retry_delay_of(err)
            return task_id, key, grpc.StatusCode.OK, None

        answers = await asyncio.gather(*[append(n) for n in range(BURST)])
        codes = Counter(code.name for _, _, code, _ in answers)
        assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
        assert {delay for _, _, code, delay in answers if code != grpc.StatusCode.OK} == {0.5}
        # It still serves, and what it acknowledged is exactly what it stored.
        stored = {
            (task_id, event.client_key)
            for task_id in tasks
            for event in await stored_events(stub, user, task_id)
            if event.client_key
        }
        assert stored == {(task_id, key) for task_id, key, code, _ in answers if code == grpc.StatusCode.OK}
