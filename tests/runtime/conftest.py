"""Fixtures for the runtime tests: one runtime server per session, stubs, and small helpers."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from nexus.kit.config import Settings
from nexus.kit.server import NexusServer
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from nexus.runtime.v1 import (
    artifact_pb2,
    artifact_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    schedule_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    task_pb2,
    workspace_pb2_grpc,
)
from tests.conftest import free_port
from tests.support import Tokens, server_process

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="session")
async def ontology(
    start_server: Callable[[str], Awaitable[NexusServer]], open_channel: Callable[[str], grpc.aio.Channel]
) -> Any:
    """The ontology service, which the runtime asks whether a task's agent, team and skill exist."""
    return ontology_pb2_grpc.OntologyServiceStub(open_channel((await start_server("ontology")).address))


@pytest.fixture(scope="session")
async def runtime(start_server: Callable[[str], Awaitable[NexusServer]], ontology: Any) -> NexusServer:
    return await start_server("runtime")


@pytest.fixture(scope="session")
def stub(runtime: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]) -> Any:
    return runtime_pb2_grpc.RuntimeServiceStub(open_channel(runtime.address))


@asynccontextmanager
async def replica(settings: Settings, **env: str) -> AsyncIterator[str]:
    """Another runtime process on the same database, as `nexus serve runtime` runs it, with
    `env` (NEXUS_* variables) on top of the session's settings; yields its address."""
    async with server_process("runtime", settings, free_port(), env) as process:
        yield process.address


@pytest.fixture
async def second_replica(settings: Settings) -> AsyncIterator[str]:
    """Another runtime process on the same database."""
    async with replica(settings) as address:
        yield address


@pytest.fixture(scope="session")
def sessions(runtime: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]) -> Any:
    return session_pb2_grpc.SessionServiceStub(open_channel(runtime.address))


@pytest.fixture(scope="session")
def workspace(runtime: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]) -> Any:
    return workspace_pb2_grpc.WorkspaceServiceStub(open_channel(runtime.address))


@pytest.fixture(scope="session")
def artifacts(runtime: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]) -> Any:
    return artifact_pb2_grpc.ArtifactServiceStub(open_channel(runtime.address))


@pytest.fixture(scope="session")
def schedules(runtime: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]) -> Any:
    return schedule_pb2_grpc.ScheduleServiceStub(open_channel(runtime.address))


async def create_session(sessions: Any, metadata: Metadata, title: str = "a session") -> str:
    created = await sessions.CreateSession(
        session_pb2.CreateSessionRequest(session=session_pb2.Session(title=title)), metadata=metadata
    )
    return str(created.session_id)


async def create_agent(ontology: Any, tokens: Tokens, agent_id: str | None = None) -> str:
    agent_id = agent_id or f"agent-{uuid.uuid4().hex[:12]}"
    request = ontology_pb2.CreateAgentRequest(agent=ontology_pb2.Agent(name=agent_id), agent_id=agent_id)
    await ontology.CreateAgent(request, metadata=tokens.service("ontology.admin"))
    return agent_id


async def create_skill(ontology: Any, tokens: Tokens, agent_id: str, skill_id: str | None = None) -> str:
    """A system skill of the agent (no steps: the runtime only checks that it exists)."""
    skill_id = skill_id or f"skill-{uuid.uuid4().hex[:12]}"
    skill = ontology_pb2.Skill(agent_id=agent_id, name=skill_id)
    request = ontology_pb2.CreateSkillRequest(skill=skill, skill_id=skill_id)
    await ontology.CreateSkill(request, metadata=tokens.service("ontology.admin"))
    return skill_id


async def create_team(ontology: Any, tokens: Tokens, *agent_ids: str) -> str:
    team = ontology_pb2.Team(name="crew", participants=[ontology_pb2.Participant(agent_id=a) for a in agent_ids])
    created = await ontology.CreateTeam(
        ontology_pb2.CreateTeamRequest(team=team), metadata=tokens.service("ontology.admin")
    )
    return str(created.id)


@pytest.fixture
async def agent(ontology: Any, tokens: Tokens) -> str:
    """A fresh agent per test, so claims in one test never see another test's tasks."""
    return await create_agent(ontology, tokens)


@pytest.fixture
def owner(tokens: Tokens) -> tuple[str, Metadata]:
    return tokens.user()


@pytest.fixture
def worker(tokens: Tokens) -> Metadata:
    return tokens.service("runtime.worker", name=f"w-{uuid.uuid4().hex[:8]}")


async def create_task(stub: Any, metadata: Metadata, agent: str, **fields: Any) -> task_pb2.Task:
    task = task_pb2.Task(
        agent_id=agent,
        trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL,
        title=fields.pop("title", "a task"),
        **fields,
    )
    created: task_pb2.Task = await stub.CreateTask(runtime_pb2.CreateTaskRequest(task=task), metadata=metadata)
    return created


def message(
    text: str, *, role: task_pb2.EventRole.ValueType = task_pb2.EVENT_ROLE_USER, key: str = ""
) -> task_pb2.TaskEvent:
    return task_pb2.TaskEvent(role=role, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=text, client_key=key)


def said(text: str, key: str = "") -> task_pb2.TaskEvent:
    """An assistant message, as a worker appends it."""
    return message(text, role=task_pb2.EVENT_ROLE_ASSISTANT, key=key)


async def append(stub: Any, metadata: Metadata, task_id: str, *events: task_pb2.TaskEvent, lease_id: str = "") -> Any:
    return await stub.AppendTaskEvents(
        runtime_pb2.AppendTaskEventsRequest(task_id=task_id, events=list(events), lease_id=lease_id), metadata=metadata
    )


async def claim_one(stub: Any, worker: Metadata, agent: str, lease_s: float = 30.0) -> runtime_pb2.ClaimedTask:
    request = runtime_pb2.ClaimTasksRequest(agent_ids=[agent], max_tasks=1)
    request.lease_duration.FromNanoseconds(int(lease_s * 1e9))
    reply = await stub.ClaimTasks(request, metadata=worker)
    assert len(reply.claimed) == 1, reply
    claimed: runtime_pb2.ClaimedTask = reply.claimed[0]
    return claimed


async def all_events(stub: Any, metadata: Metadata, task_id: str) -> list[task_pb2.TaskEvent]:
    events: list[task_pb2.TaskEvent] = []
    token = ""
    while True:
        reply = await stub.ListTaskEvents(
            runtime_pb2.ListTaskEventsRequest(task_id=task_id, page_size=1000, page_token=token), metadata=metadata
        )
        events += reply.events
        token = reply.next_page_token
        if not token:
            return events


async def collect(stub: Any, metadata: Metadata, task_id: str, after_seq: int = 0) -> list[task_pb2.TaskEvent]:
    """A whole stream, until the server ends it."""
    request = runtime_pb2.StreamTaskEventsRequest(task_id=task_id, after_seq=after_seq)
    return [event async for event in stub.StreamTaskEvents(request, metadata=metadata)]


@dataclass
class Following:
    """A stream read in the background: `events` grows as they arrive; `done` ends with the stream
    (its result is every event)."""

    events: list[task_pb2.TaskEvent]
    done: asyncio.Future[list[task_pb2.TaskEvent]]


def follow(stub: Any, metadata: Metadata, task_id: str, after_seq: int = 0) -> Following:
    events: list[task_pb2.TaskEvent] = []

    async def read() -> list[task_pb2.TaskEvent]:
        request = runtime_pb2.StreamTaskEventsRequest(task_id=task_id, after_seq=after_seq)
        async for event in stub.StreamTaskEvents(request, metadata=metadata):
            events.append(event)
        return events

    return Following(events, asyncio.ensure_future(read()))


async def upload(artifacts: Any, metadata: Metadata, task_id: str, data: bytes, lease_id: str = "", **kw: Any) -> Any:
    header = artifact_pb2.ArtifactHeader(
        artifact=artifact_pb2.Artifact(
            task_id=task_id,
            type=kw.pop("type", "pdf"),
            display_name=kw.pop("display_name", "report.pdf"),
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            **kw,
        ),
        lease_id=lease_id,
    )

    async def messages() -> Any:
        yield artifact_pb2.CreateArtifactRequest(header=header)
        for start in range(0, len(data), 1 << 20):
            yield artifact_pb2.CreateArtifactRequest(chunk=data[start : start + (1 << 20)])

    return await artifacts.CreateArtifact(messages(), metadata=metadata)
