"""`nexus worker` as a real process: killed mid-task, its task is resumed by another worker after
the lease expires with no effect repeated; stopped with SIGTERM, it lets the current step finish,
lets go of the task and exits; its liveness probe follows its heartbeat."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import pytest

from launch.cli import main as nexus
from nexus.runtime.v1 import task_pb2
from tests.worker.conftest import (
    Owner,
    RunWorker,
    Services,
    StartWorker,
    WorkerProcess,
    all_events,
    artifacts_of,
    create_skill,
    create_task,
    plan_of,
    step,
    wait_for,
    wait_status,
)
from tests.worker.test_worker import plan_changes, said


def statuses(events: list[task_pb2.TaskEvent]) -> list[str]:
    return [str(e.metadata["status"]) for e in events if e.type == task_pb2.EVENT_TYPE_STATUS]


def alive(worker: WorkerProcess, check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """`check`, failing at once (with the worker's log) if the worker process has exited."""

    async def checked() -> bool:
        assert worker.process.returncode is None, f"the worker exited:\n{worker.tail()}"
        return await check()

    return checked


async def kill(worker: WorkerProcess) -> None:
    """SIGKILL: no shutdown code runs, the lease is simply left to expire."""
    worker.process.kill()
    assert await worker.process.wait() == -signal.SIGKILL, worker.tail()


async def test_a_worker_killed_mid_task_is_replaced_after_its_lease_expires_and_no_effect_happens_twice(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker, worker_process: StartWorker
) -> None:
    skill = await create_skill(
        services,
        agent,
        step("announce", "message", text="Starting"),
        step("talk", "message", ["announce"], text="Working on {{ inputs.topic }}"),
        step(
            "report", "write_artifact", ["talk"], display_name="Notes", type="markdown", content="# {{ inputs.topic }}"
        ),
        step("wrap", "message", ["report"], text="Done"),
    )
    task = await create_task(services, owner, agent, skill_id=skill.id, inputs={"topic": "acme"})
    # A pause after each effect, before its step is marked done: a kill then lands after the
    # effect happened and before the plan says so, so the next worker runs the step again.
    # (The pause is far longer than the test's 20 ms polls; the lease far longer than its renewal
    # interval, so a loaded machine does not expire a live worker's lease.)
    flags = ("--agent", agent, "--lease", "1.5", "--step-delay", "1.0")
    first = await worker_process(*flags)

    async def talked() -> bool:
        return "Working on acme" in said(await all_events(services, owner, task.task_id))

    await wait_for(alive(first, talked), "the first worker's second message")
    await kill(first)
    assert (await plan_of(services, owner, task.task_id))["talk"] == "running"

    second = await worker_process(*flags)

    async def reported() -> bool:
        return bool(await artifacts_of(services, owner, task.task_id))

    await wait_for(alive(second, reported), "the second worker's artifact")
    await kill(second)
    assert (await plan_of(services, owner, task.task_id))["report"] == "running"

    async with run_worker(agents=[agent]):
        await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_FINISHED)

    events = await all_events(services, owner, task.task_id)
    assert said(events) == ["Starting", "Working on acme", "Done"]
    # Each step went running → done once: a resumed step is not marked running again.
    assert plan_changes(events) == [
        (s, st) for s in ("announce", "talk", "report", "wrap") for st in ("running", "done")
    ]
    assert statuses(events) == ["queued", "running", "queued", "running", "queued", "running", "finished"]
    assert [e.metadata["reason"] for e in events if e.type == task_pb2.EVENT_TYPE_STATUS].count("lease_expired") == 2
    [artifact] = await artifacts_of(services, owner, task.task_id)
    assert artifact.display_name == "Notes"


async def test_sigterm_lets_the_current_step_finish_releases_the_task_and_exits_and_the_probe_follows(
    services: Services, owner: Owner, agent: str, run_worker: RunWorker, worker_process: StartWorker
) -> None:
    skill = await create_skill(
        services,
        agent,
        step("s1", "message", text="one"),
        step("s2", "message", ["s1"], text="two"),
        step("s3", "message", ["s2"], text="three"),
    )
    task = await create_task(services, owner, agent, skill_id=skill.id)
    # A lease far longer than the test waits: the task comes back quickly only if it is released.
    worker = await worker_process("--agent", agent, "--lease", "120", "--step-delay", "1.0", "--grace", "5")

    async def spoke() -> bool:
        return "one" in said(await all_events(services, owner, task.task_id))

    await wait_for(alive(worker, spoke), "the first message")
    probe = ["worker", "--check", "--heartbeat-file", str(worker.heartbeat)]
    with pytest.raises(SystemExit) as healthy:
        nexus(probe)
    assert healthy.value.code == 0

    worker.process.send_signal(signal.SIGTERM)  # during s1's pause (or, on a slow machine, s2's)
    assert await worker.process.wait() == 0, worker.tail()
    # The step under way finished; the next one did not start.
    plan = await plan_of(services, owner, task.task_id)
    assert plan["s1"] == "done" and plan["s3"] == "pending" and "running" not in plan.values()
    with pytest.raises(SystemExit) as gone:
        nexus(probe)
    assert gone.value.code == 1

    await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_QUEUED)
    async with run_worker(agents=[agent]):
        await wait_status(services, owner, task.task_id, task_pb2.TASK_STATUS_FINISHED)
    events = await all_events(services, owner, task.task_id)
    assert said(events) == ["one", "two", "three"]
    assert statuses(events) == ["queued", "running", "queued", "running", "finished"]
