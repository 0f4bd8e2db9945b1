"""Gateway fixtures: the three services and the gateway on the session database, a gateway client
per account, and builders for agents, skills and commands (created as an ontology admin)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from launch.registry import BY_NAME
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.gateway.v1 import gateway_pb2_grpc as pb_grpc
from nexus.kit import server as kit_server
from nexus.kit.auth import bearer_metadata
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, Resources
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
from nexus.user.v1 import user_pb2
from services.user.keys import ensure_key_file
from tests.gateway.http_support import Http
from tests.support import Tokens, eventually

Metadata = tuple[tuple[str, str], ...]
PASSWORD = "correct horse battery"


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@dataclass
class Account:
    user_id: str
    email: str
    password: str
    tokens: user_pb2.AuthTokens

    @property
    def md(self) -> Metadata:
        return bearer_metadata(self.tokens.access_token)


@dataclass
class Platform:
    """Every server of the platform, started once per session."""

    gateway: NexusServer
    runtime: NexusServer
    ontology: NexusServer
    user: NexusServer


@pytest.fixture(scope="session")
async def platform(settings: Settings, start_server: Callable[[str], Awaitable[NexusServer]]) -> Platform:
    ensure_key_file(settings.resolved_credential_keys_file)  # what `nexus up` prepares on first run
    ontology = await start_server("ontology")
    user = await start_server("user")
    runtime = await start_server("runtime")
    gateway = await start_server("gateway")
    return Platform(gateway=gateway, runtime=runtime, ontology=ontology, user=user)


@pytest.fixture(scope="session")
def gw(platform: Platform, open_channel: Callable[[str], grpc.aio.Channel]) -> pb_grpc.GatewayServiceAsyncStub:
    return pb_grpc.GatewayServiceStub(open_channel(platform.gateway.address))


@pytest.fixture(scope="session")
def runtime(
    platform: Platform, open_channel: Callable[[str], grpc.aio.Channel]
) -> runtime_pb2_grpc.RuntimeServiceAsyncStub:
    """The runtime itself, for the tests' worker (the gateway offers clients no worker calls)."""
    return runtime_pb2_grpc.RuntimeServiceStub(open_channel(platform.runtime.address))


@pytest.fixture(scope="session")
def http(platform: Platform) -> Http:
    """The gateway's HTTP port, as a browser reaches it."""
    assert platform.gateway.http is not None
    return Http(f"http://{platform.gateway.http.address}")


SignUp = Callable[[], Awaitable[Account]]


@pytest.fixture(scope="session")
def sign_up(gw: pb_grpc.GatewayServiceAsyncStub) -> SignUp:
    """A fresh account, signed up through the gateway (each costs one Argon2id hash)."""

    async def create() -> Account:
        email = f"{unique('gw')}@example.com"
        reply = await gw.SignUp(pb.SignUpRequest(email=email, password=PASSWORD))
        return Account(reply.user.id, reply.user.email, PASSWORD, reply.tokens)

    return create


@pytest.fixture(scope="session")
async def alice(sign_up: SignUp) -> Account:
    return await sign_up()


@pytest.fixture(scope="session")
async def bob(sign_up: SignUp) -> Account:
    return await sign_up()


@dataclass
class Catalog:
    """Creates agents, skills and commands as an ontology admin, each with a unique id."""

    stub: onto_grpc.OntologyServiceAsyncStub
    admin: Metadata

    async def agent(self) -> str:
        agent_id = unique("agent")
        request = onto.CreateAgentRequest(agent_id=agent_id, agent=onto.Agent(name=f"Agent {agent_id}"))
        await self.stub.CreateAgent(request, metadata=self.admin)
        return agent_id

    async def skill(
        self, agent_id: str, *, inputs: Sequence[onto.InputField] = (), steps: Sequence[onto.Step] = ()
    ) -> onto.Skill:
        definition = onto.SkillDefinition(inputs=inputs, steps=steps or [onto.Step(id="hello", action="message")])
        request = onto.CreateSkillRequest(
            skill_id=unique("skill"), skill=onto.Skill(agent_id=agent_id, name="Scan a site", definition=definition)
        )
        return await self.stub.CreateSkill(request, metadata=self.admin)

    async def command(self, agent_id: str, skill_id: str) -> onto.Command:
        command = onto.Command(trigger="/" + unique("c"), agent_id=agent_id, target_skill_id=skill_id)
        return await self.stub.CreateCommand(onto.CreateCommandRequest(command=command), metadata=self.admin)


@pytest.fixture(scope="session")
def catalog(platform: Platform, open_channel: Callable[[str], grpc.aio.Channel], tokens: Tokens) -> Catalog:
    stub = onto_grpc.OntologyServiceStub(open_channel(platform.ontology.address))
    return Catalog(stub, tokens.service("ontology.admin", name="gateway-tests"))


SCAN_STEPS = [
    onto.Step(id="announce", action="message"),
    onto.Step(id="ask", action="ask_user", depends_on=["announce"]),
    onto.Step(id="report", action="write_artifact", depends_on=["ask"]),
]


def scan_inputs() -> list[onto.InputField]:
    depth = onto.InputField(
        name="depth", type=onto.INPUT_TYPE_ENUM, allowed_values=["quick", "deep"], description="how deep"
    )
    depth.default_value.string_value = "quick"
    return [onto.InputField(name="url", type=onto.INPUT_TYPE_URL, required=True), depth]


@dataclass
class Scan:
    """A fresh agent with a `/scan`-like command of its own, so a test's worker claims only that
    test's tasks."""

    agent_id: str
    skill: onto.Skill
    command: onto.Command

    @property
    def trigger(self) -> str:
        return self.command.trigger


@pytest.fixture
async def scan(catalog: Catalog) -> Scan:
    agent_id = await catalog.agent()
    skill = await catalog.skill(agent_id, inputs=scan_inputs(), steps=SCAN_STEPS)
    return Scan(agent_id, skill, await catalog.command(agent_id, skill.id))


@dataclass
class Worker:
    """The test plays the worker through the runtime's worker RPCs (service token)."""

    runtime: runtime_pb2_grpc.RuntimeServiceAsyncStub
    workspace: workspace_pb2_grpc.WorkspaceServiceAsyncStub
    artifacts: artifact_pb2_grpc.ArtifactServiceAsyncStub
    md: Metadata

    async def claim(self, agent_id: str) -> runtime_pb2.ClaimedTask:
        reply = await self.runtime.ClaimTasks(
            runtime_pb2.ClaimTasksRequest(agent_ids=[agent_id], max_tasks=1), metadata=self.md
        )
        assert len(reply.claimed) == 1, reply
        return reply.claimed[0]

    async def next_claim(self, agent_id: str, *, within_s: float = 10.0) -> runtime_pb2.ClaimedTask:
        """Claims the agent's next task as soon as one is queued (as a polling worker does)."""
        request = runtime_pb2.ClaimTasksRequest(agent_ids=[agent_id], max_tasks=1)

        async def claim() -> runtime_pb2.ClaimedTask | None:
            reply = await self.runtime.ClaimTasks(request, metadata=self.md)
            return reply.claimed[0] if reply.claimed else None

        return await eventually(claim, f"a task of {agent_id} to be queued", within_s=within_s)

    async def say(self, claimed: runtime_pb2.ClaimedTask, *texts: str) -> None:
        events = [
            task_pb2.TaskEvent(role=task_pb2.EVENT_ROLE_ASSISTANT, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=t)
            for t in texts
        ]
        await self.runtime.AppendTaskEvents(
            runtime_pb2.AppendTaskEventsRequest(
                task_id=claimed.task.task_id, events=events, lease_id=claimed.lease.lease_id
            ),
            metadata=self.md,
        )

    async def ask(self, claimed: runtime_pb2.ClaimedTask, question: str) -> None:
        event = task_pb2.TaskEvent(
            role=task_pb2.EVENT_ROLE_ASSISTANT, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=question
        )
        await self.runtime.RequestInput(
            runtime_pb2.RequestInputRequest(
                task_id=claimed.task.task_id, lease_id=claimed.lease.lease_id, question=event
            ),
            metadata=self.md,
        )

    async def step(self, claimed: runtime_pb2.ClaimedTask, step_id: str, status: str) -> None:
        """Moves a plan step (`running`, `done`, …), as a worker does while it works."""
        value = workspace_pb2.PlanStepStatus.Value(f"PLAN_STEP_STATUS_{status.upper()}")
        await self.workspace.UpdatePlanStep(
            workspace_pb2.UpdatePlanStepRequest(
                task_id=claimed.task.task_id, step_id=step_id, status=value, lease_id=claimed.lease.lease_id
            ),
            metadata=self.md,
        )

    async def set_plan(self, claimed: runtime_pb2.ClaimedTask, *steps: workspace_pb2.PlanStep) -> None:
        await self.workspace.SetTaskPlan(
            workspace_pb2.SetTaskPlanRequest(
                task_id=claimed.task.task_id, steps=steps, lease_id=claimed.lease.lease_id
            ),
            metadata=self.md,
        )

    async def remember(self, claimed: runtime_pb2.ClaimedTask, summary: str, *takeaways: str) -> None:
        memory = workspace_pb2.TaskMemory(task_id=claimed.task.task_id, summary_text=summary, key_takeaways=takeaways)
        await self.workspace.PutTaskMemory(
            workspace_pb2.PutTaskMemoryRequest(memory=memory, lease_id=claimed.lease.lease_id), metadata=self.md
        )

    async def write_artifact(
        self, claimed: runtime_pb2.ClaimedTask, name: str, content: bytes, **fields: Any
    ) -> artifact_pb2.Artifact:
        return await upload_artifact(
            self.artifacts,
            self.md,
            claimed.task.task_id,
            content,
            lease_id=claimed.lease.lease_id,
            display_name=name,
            **fields,
        )

    async def finish(self, claimed: runtime_pb2.ClaimedTask, **result: Any) -> None:
        request = runtime_pb2.FinishTaskRequest(task_id=claimed.task.task_id, lease_id=claimed.lease.lease_id)
        request.result.update(result)
        await self.runtime.FinishTask(request, metadata=self.md)

    async def fail(self, claimed: runtime_pb2.ClaimedTask, reason: str, message: str) -> None:
        error = task_pb2.TaskError(reason=reason, message=message)
        await self.runtime.FailTask(
            runtime_pb2.FailTaskRequest(task_id=claimed.task.task_id, lease_id=claimed.lease.lease_id, error=error),
            metadata=self.md,
        )


@pytest.fixture(scope="session")
def workspace(
    platform: Platform, open_channel: Callable[[str], grpc.aio.Channel]
) -> workspace_pb2_grpc.WorkspaceServiceAsyncStub:
    """The runtime's workspace service, for the tests' worker and for looking at plans directly."""
    return workspace_pb2_grpc.WorkspaceServiceStub(open_channel(platform.runtime.address))


@pytest.fixture(scope="session")
def artifacts(
    platform: Platform, open_channel: Callable[[str], grpc.aio.Channel]
) -> artifact_pb2_grpc.ArtifactServiceAsyncStub:
    return artifact_pb2_grpc.ArtifactServiceStub(open_channel(platform.runtime.address))


async def upload_artifact(
    artifacts: artifact_pb2_grpc.ArtifactServiceAsyncStub,
    md: Metadata,
    task_id: str,
    content: bytes,
    *,
    lease_id: str = "",
    display_name: str = "report.md",
    **fields: Any,
) -> artifact_pb2.Artifact:
    header = artifact_pb2.ArtifactHeader(
        artifact=artifact_pb2.Artifact(
            task_id=task_id,
            type=fields.pop("type", "markdown"),
            display_name=display_name,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            **fields,
        ),
        lease_id=lease_id,
    )

    async def parts() -> AsyncIterator[artifact_pb2.CreateArtifactRequest]:
        yield artifact_pb2.CreateArtifactRequest(header=header)
        yield artifact_pb2.CreateArtifactRequest(chunk=content)

    return await artifacts.CreateArtifact(parts(), metadata=md)


@pytest.fixture
def worker(
    runtime: runtime_pb2_grpc.RuntimeServiceAsyncStub,
    workspace: workspace_pb2_grpc.WorkspaceServiceAsyncStub,
    artifacts: artifact_pb2_grpc.ArtifactServiceAsyncStub,
    tokens: Tokens,
) -> Worker:
    return Worker(runtime, workspace, artifacts, tokens.service("runtime.worker", name=f"w-{uuid.uuid4().hex[:8]}"))


@asynccontextmanager
async def extra_server(
    name: str, settings: Settings, *, port: int = 0, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AsyncIterator[NexusServer]:
    """Another real server of `name` beside the session's, optionally with `interceptors` inside
    the kit's chain (closest to the servicer), to observe what reaches the service."""
    original = grpc.aio.server

    extra = list(interceptors)

    def with_extra(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        kwargs["interceptors"] = [*kwargs.get("interceptors", ()), *extra]
        return original(*args, **kwargs)

    grpc.aio.server = with_extra
    try:
        server = await kit_server.build(BY_NAME[name], Resources(settings))
    finally:
        grpc.aio.server = original
    # Beside the session's servers: its HTTP port (the gateway's) is any free one.
    await server.start(port, http_port=0)
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


class DeadlineRecorder(grpc.aio.ServerInterceptor):
    """Records `time_remaining()` as each method's handler sees it (None: no deadline)."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float | None]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        method = details.method.rsplit("/", 1)[-1]
        record = self.seen.setdefault(method, [])
        common = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary(request: Any, context: Any) -> Any:
                record.append(context.time_remaining())
                return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, **common)
        if handler.unary_stream:
            stream_behavior = handler.unary_stream

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                record.append(context.time_remaining())
                async for item in stream_behavior(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(stream, **common)
        return handler
