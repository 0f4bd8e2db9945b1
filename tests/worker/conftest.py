"""Fixtures for the reference worker: the ontology and runtime servers of the session, the seed
catalog, a fresh agent per test (so a test's worker claims only that test's tasks), and workers
run in-process or as real `nexus worker` processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from nexus.kit import config
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer
from nexus.kit.validation import dict_to_struct
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.ontology.v1 import ontology_pb2_grpc as onto_grpc
from nexus.runtime.v1 import (
    artifact_pb2,
    artifact_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    task_pb2,
    workspace_pb2,
    workspace_pb2_grpc,
)
from services.ontology import catalog
from tests.support import NEXUS_COMMAND, Tokens, eventually
from worker.loop import Worker
from worker.options import REQUIRED_SCOPES as WORKER_SCOPES
from worker.options import Options

Metadata = tuple[tuple[str, str], ...]
# A test waits at most this long for a task to reach a state (normally well under a second).
WAIT_S = 20.0


@dataclass
class Services:
    """Clients of the session's ontology and runtime servers."""

    ontology: onto_grpc.OntologyServiceAsyncStub
    runtime: runtime_pb2_grpc.RuntimeServiceAsyncStub
    workspace: workspace_pb2_grpc.WorkspaceServiceAsyncStub
    artifacts: artifact_pb2_grpc.ArtifactServiceAsyncStub
    admin: Metadata


@pytest.fixture(scope="session")
async def services(
    settings: Settings,
    start_server: Callable[[str], Awaitable[NexusServer]],
    open_channel: Callable[[str], grpc.aio.Channel],
    tokens: Tokens,
) -> Services:
    ontology = await start_server("ontology")
    runtime = await start_server("runtime")
    await catalog.load(settings)  # idempotent; the catalog's skills are what the worker must run
    runtime_channel = open_channel(runtime.address)
    return Services(
        ontology=onto_grpc.OntologyServiceStub(open_channel(ontology.address)),
        runtime=runtime_pb2_grpc.RuntimeServiceStub(runtime_channel),
        workspace=workspace_pb2_grpc.WorkspaceServiceStub(runtime_channel),
        artifacts=artifact_pb2_grpc.ArtifactServiceStub(runtime_channel),
        admin=tokens.service("ontology.admin", name="worker-tests"),
    )


@dataclass
class Owner:
    user_id: str
    md: Metadata


@pytest.fixture
def owner(tokens: Tokens) -> Owner:
    user_id, md = tokens.user()
    return Owner(user_id, md)


@pytest.fixture
async def agent(services: Services) -> str:
    """A fresh agent per test: its worker claims only this test's tasks."""
    agent_id = f"agent-{uuid.uuid4().hex[:12]}"
    await services.ontology.CreateAgent(
        onto.CreateAgentRequest(agent_id=agent_id, agent=onto.Agent(name="Tester")), metadata=services.admin
    )
    return agent_id


async def copy_skill(services: Services, source_id: str, agent_id: str) -> onto.Skill:
    """A catalog skill, copied to the test's agent (same inputs and steps)."""
    source = await services.ontology.GetSkill(onto.GetSkillRequest(skill_id=source_id), metadata=services.admin)
    skill = onto.Skill(agent_id=agent_id, name=source.name, definition=source.definition)
    request = onto.CreateSkillRequest(skill=skill, skill_id=f"{source_id}-{uuid.uuid4().hex[:8]}")
    return await services.ontology.CreateSkill(request, metadata=services.admin)


async def create_skill(services: Services, agent_id: str, *steps: onto.Step) -> onto.Skill:
    skill = onto.Skill(agent_id=agent_id, name="Steps", definition=onto.SkillDefinition(steps=steps))
    request = onto.CreateSkillRequest(skill=skill, skill_id=f"skill-{uuid.uuid4().hex[:8]}")
    return await services.ontology.CreateSkill(request, metadata=services.admin)


def step(step_id: str, action: str, depends_on: Sequence[str] = (), **args: Any) -> onto.Step:
    return onto.Step(id=step_id, action=action, args=dict_to_struct(args), depends_on=depends_on)


async def create_task(
    services: Services,
    owner: Owner,
    agent_id: str,
    *,
    skill_id: str = "",
    inputs: dict[str, Any] | None = None,
    trigger: task_pb2.TriggerSource.ValueType = task_pb2.TRIGGER_SOURCE_SLASH_COMMAND,
    title: str = "a task",
) -> task_pb2.Task:
    task = task_pb2.Task(
        agent_id=agent_id,
        trigger_source=trigger,
        origin_skill_id=skill_id,
        title=title,
        inputs=dict_to_struct(inputs or {}),
    )
    return await services.runtime.CreateTask(runtime_pb2.CreateTaskRequest(task=task), metadata=owner.md)


async def seed_plan(services: Services, owner: Owner, task_id: str, *steps: onto.Step) -> None:
    """What the gateway's RunCommand does: the skill's steps as the task's plan, all pending."""
    plan = [
        workspace_pb2.PlanStep(step_id=s.id, title=s.id, action=s.action, args=s.args, depends_on=s.depends_on)
        for s in steps
    ]
    await services.workspace.SetTaskPlan(
        workspace_pb2.SetTaskPlanRequest(task_id=task_id, steps=plan), metadata=owner.md
    )


async def follow(
    services: Services, owner: Owner, task_id: str, answers: Sequence[str] = ()
) -> list[task_pb2.TaskEvent]:
    """The task's whole event stream until it ends, answering each question in turn."""
    left = list(answers)

    async def read() -> list[task_pb2.TaskEvent]:
        seen: list[task_pb2.TaskEvent] = []
        request = runtime_pb2.StreamTaskEventsRequest(task_id=task_id)
        async for event in services.runtime.StreamTaskEvents(request, metadata=owner.md):
            seen.append(event)
            if event.type == task_pb2.EVENT_TYPE_STATUS and event.metadata["status"] == "waiting_input":
                assert left, "the task asked more questions than the test has answers"
                answer = task_pb2.TaskEvent(
                    role=task_pb2.EVENT_ROLE_USER, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=left.pop(0)
                )
                await services.runtime.ProvideInput(
                    runtime_pb2.ProvideInputRequest(task_id=task_id, answer=answer), metadata=owner.md
                )
        return seen

    return await asyncio.wait_for(read(), WAIT_S)


async def all_events(services: Services, owner: Owner, task_id: str) -> list[task_pb2.TaskEvent]:
    reply = await services.runtime.ListTaskEvents(
        runtime_pb2.ListTaskEventsRequest(task_id=task_id, page_size=1000), metadata=owner.md
    )
    return list(reply.events)


async def get_task(services: Services, owner: Owner, task_id: str) -> task_pb2.Task:
    return await services.runtime.GetTask(runtime_pb2.GetTaskRequest(task_id=task_id), metadata=owner.md)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within_s: float = WAIT_S) -> None:
    """Polls `check` until it holds (no fixed sleeps: tests move as fast as the worker)."""
    await eventually(check, what, within_s=within_s)


async def wait_status(
    services: Services, owner: Owner, task_id: str, status: task_pb2.TaskStatus.ValueType
) -> task_pb2.Task:
    async def reached() -> bool:
        return (await get_task(services, owner, task_id)).status == status

    await wait_for(reached, f"task {task_id} to be {task_pb2.TaskStatus.Name(status)}")
    return await get_task(services, owner, task_id)


async def plan_of(services: Services, owner: Owner, task_id: str) -> dict[str, str]:
    """Step id → status name (`done`, `running`, …)."""
    plan = await services.workspace.GetTaskPlan(workspace_pb2.GetTaskPlanRequest(task_id=task_id), metadata=owner.md)
    return {
        s.step_id: workspace_pb2.PlanStepStatus.Name(s.status).removeprefix("PLAN_STEP_STATUS_").lower()
        for s in plan.steps
    }


async def artifacts_of(services: Services, owner: Owner, task_id: str) -> list[artifact_pb2.Artifact]:
    reply = await services.artifacts.ListArtifacts(
        artifact_pb2.ListArtifactsRequest(task_id=task_id), metadata=owner.md
    )
    return list(reply.artifacts)


@pytest.fixture(scope="session")
def worker_token(tokens: Tokens) -> str:
    """A token like the one `nexus up` mints for its worker."""
    return tokens.signer.mint("service:worker-tests", kind="service", scopes=WORKER_SCOPES, ttl_s=3600)


RunWorker = Callable[..., Any]


@pytest.fixture
def run_worker(settings: Settings, worker_token: str, tmp_path: Path) -> RunWorker:
    """`async with run_worker(agents=[…], …) as worker:` runs an in-process worker for the block."""

    @asynccontextmanager
    async def running(**options: Any) -> AsyncIterator[Worker]:
        options.setdefault("poll_s", 0.05)
        options.setdefault("heartbeat_file", tmp_path / f"{uuid.uuid4().hex}.heartbeat")
        worker = Worker(settings.with_overrides(service_token=worker_token), Options(**options))
        serving = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            assert await asyncio.wait_for(serving, WAIT_S) == 0

    return running


@dataclass
class WorkerProcess:
    """`nexus worker` as a real process."""

    process: asyncio.subprocess.Process
    log: Path
    heartbeat: Path
    args: list[str] = field(default_factory=list)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


StartWorker = Callable[..., Awaitable[WorkerProcess]]


@pytest.fixture
async def worker_process(settings: Settings, worker_token: str, tmp_path: Path) -> AsyncIterator[StartWorker]:
    """Starts `nexus worker` processes (flags as given); any still running at the end is killed."""
    started: list[WorkerProcess] = []

    async def start(*flags: str) -> WorkerProcess:
        n = len(started)
        log, heartbeat = tmp_path / f"worker-{n}.log", tmp_path / f"worker-{n}.heartbeat"
        env = {**os.environ, **config.to_env(settings.with_overrides(service_token=worker_token))}
        args = ["worker", "--heartbeat-file", str(heartbeat), "--poll", "0.05", *flags]
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                *NEXUS_COMMAND, *args, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        finally:
            os.close(out)
        started.append(WorkerProcess(process, log, heartbeat, args))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()
