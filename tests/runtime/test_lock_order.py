"""Task rows are locked in one global order (by id) by every statement that locks several, so two
replicas' commit lanes never deadlock each other."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from nexus.kit.config import Settings
from nexus.kit.server import NexusServer
from nexus.runtime.v1 import runtime_pb2_grpc, workspace_pb2, workspace_pb2_grpc
from tests.runtime.conftest import Metadata, all_events, append, create_task, message
from tests.runtime.locks import admin_sql

LOAD_S = 5.0


async def deadlocks(settings: Settings) -> int:
    rows = await admin_sql(settings, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    return int(rows[0][0])


async def test_two_replicas_appending_to_overlapping_tasks_never_deadlock(
    stub: Any,
    runtime: NexusServer,
    owner: tuple[str, Metadata],
    agent: str,
    settings: Settings,
    second_replica: str,
    open_channel: Any,
) -> None:
    _, user = owner
    other = runtime_pb2_grpc.RuntimeServiceStub(open_channel(second_replica))
    plans = {
        stub: workspace_pb2_grpc.WorkspaceServiceStub(open_channel(runtime.address)),
        other: workspace_pb2_grpc.WorkspaceServiceStub(open_channel(second_replica)),
    }
    tasks = [(await create_task(stub, user, agent)).task_id for _ in range(10)]
    # Both lanes know every task's state, so their groups take the one-statement path.
    for replica in (stub, other):
        await asyncio.gather(*[append(replica, user, t, message("warm")) for t in tasks])
    before = await deadlocks(settings)
    deadline = asyncio.get_running_loop().time() + LOAD_S
    appended = 0

    async def appender(replica: Any, seed: int) -> None:
        """Groups on both replicas hold most of the tasks, each in its own arrival order; now
        and then a plan change (a transaction of store/tasks.py) locks one of them too."""
        nonlocal appended
        rng = random.Random(seed)
        while asyncio.get_running_loop().time() < deadline:
            if rng.random() < 0.05:
                step = workspace_pb2.PlanStep(step_id="s", title="a step", action="read_url")
                request = workspace_pb2.SetTaskPlanRequest(task_id=rng.choice(tasks), steps=[step])
                await plans[replica].SetTaskPlan(request, metadata=user)
            else:
                await append(replica, user, rng.choice(tasks), message("x"))
                appended += 1

    await asyncio.gather(*[appender(replica, n) for n in range(32) for replica in (stub, other)])
    # A backend reports its counters at most once a second, when it goes idle: a second of
    # appends through both lanes after the load makes both report everything.
    settle = asyncio.get_running_loop().time() + 1.2
    while asyncio.get_running_loop().time() < settle:
        await asyncio.gather(*[append(replica, user, tasks[0], message("settle")) for replica in (stub, other)])
        await asyncio.sleep(0.1)
    assert await deadlocks(settings) == before
    assert appended > 0
    for task_id in tasks:
        seqs = [e.seq for e in await all_events(stub, user, task_id)]
        assert seqs == list(range(1, len(seqs) + 1))
