"""The chaos suite's harness: a Postgres of its own, runtime replicas as processes, and clients
that do what real ones do (retry with the same client key, resume a stream from the last seq).

The suite restarts Postgres, so it never touches the shared NEXUS_TEST_DATABASE_URL server: it
always runs a private embedded server in a temporary directory.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import grpc
import pytest

from launch.registry import ONTOLOGY, OWNING
from nexus.kit import errors, migrations, postgres
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, running
from nexus.kit.tokens import TokenSigner, ensure_signing_key
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc, task_pb2
from tests.conftest import _isolated_settings
from tests.support import PrivatePostgres, Tokens, private_postgres

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")

# A refused or failed call is retried after its RetryInfo delay, else after this.
RETRY_S = 0.05


@pytest.fixture(scope="session")
def chaos_postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def chaos_settings(chaos_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = replace(
        _isolated_settings(chaos_postgres.url, tmp_path_factory.mktemp("chaos")),
        shutdown_grace_s=5.0,
        # One line per call would cost the servers under test more than the calls themselves.
        log_level="WARNING",
    )
    ensure_signing_key(settings.resolved_signing_keys_dir)
    postgres.bootstrap(settings, OWNING)
    migrations.upgrade_all(settings, OWNING)
    return settings


@pytest.fixture(scope="session")
def chaos_tokens(chaos_settings: Settings) -> Tokens:
    key = ensure_signing_key(chaos_settings.resolved_signing_keys_dir)
    return Tokens(TokenSigner(key, issuer=chaos_settings.token_issuer, audience=chaos_settings.token_audience))


@pytest.fixture(scope="session")
async def chaos_ontology(chaos_settings: Settings) -> AsyncIterator[NexusServer]:
    """In this process: the runtime asks it whether a task's agent exists."""
    async with running(ONTOLOGY, chaos_settings, port=chaos_settings.port("ontology")) as server:
        yield server


@pytest.fixture
async def agent(chaos_ontology: NexusServer, chaos_tokens: Tokens) -> str:
    agent_id = f"agent-{uuid.uuid4().hex[:12]}"
    async with grpc.aio.insecure_channel(chaos_ontology.address) as channel:
        stub: Any = ontology_pb2_grpc.OntologyServiceStub(channel)
        request = ontology_pb2.CreateAgentRequest(agent=ontology_pb2.Agent(name=agent_id), agent_id=agent_id)
        await retried(lambda: stub.CreateAgent(request, metadata=chaos_tokens.service("ontology.admin")))
    return agent_id


def stub_at(channel: grpc.aio.Channel) -> Any:
    return runtime_pb2_grpc.RuntimeServiceStub(channel)


async def create_tasks(stub: Any, user: Metadata, agent: str, count: int) -> list[str]:
    async def one(i: int) -> str:
        task = task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title=f"chaos {i}")
        request = runtime_pb2.CreateTaskRequest(task=task, request_id=str(uuid.uuid4()))
        created = await retried(lambda: stub.CreateTask(request, metadata=user))
        return str(created.task_id)

    return list(await asyncio.gather(*[one(i) for i in range(count)]))


def keyed(text: str, key: str) -> task_pb2.TaskEvent:
    return task_pb2.TaskEvent(
        role=task_pb2.EVENT_ROLE_USER, type=task_pb2.EVENT_TYPE_MESSAGE, content_text=text, client_key=key
    )


def wait_after(err: grpc.aio.AioRpcError) -> float:
    delay = errors.retry_delay_of(err)
    return RETRY_S if delay is None else delay


async def retried(call: Callable[[], Awaitable[T]], within_s: float = 30.0) -> T:
    """An idempotent call (a request id, a client key, a read), retried while it fails for a
    reason that may pass, as a careful client does: a service's first calls after a Postgres
    restart fail on the connections the restart cut."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if err.code() not in RETRYABLE or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(wait_after(err))


@dataclass
class Writer:
    """Appends keyed events to a task through a list of replicas, as a careful client does: a call
    that fails for a reason that may pass is retried with the same client key (on the next
    replica), so nothing is written twice; `acked` maps each key to the seq its receipt named."""

    stubs: list[Any]
    user: Metadata
    task_id: str
    name: str
    acked: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    stopping: bool = False

    async def run(self) -> None:
        n = 0
        while not self.stopping:
            key = f"{self.name}-{n}"
            await self.append_until_acked(key, n)
            n += 1

    async def append_until_acked(self, key: str, n: int) -> None:
        request = runtime_pb2.AppendTaskEventsRequest(task_id=self.task_id, events=[keyed(f"event {key}", key)])
        attempt = 0
        while True:
            stub = self.stubs[(n + attempt) % len(self.stubs)]
            try:
                reply = await stub.AppendTaskEvents(request, metadata=self.user, timeout=10)
            except grpc.aio.AioRpcError as err:
                if err.code() not in RETRYABLE:
                    pytest.fail(f"append {key}: {err.code().name} {err.details()}")
                self.retries += 1
                attempt += 1
                await asyncio.sleep(wait_after(err))
                continue
            self.acked[key] = reply.events[0].seq
            return


# Codes a careful client retries with the same client key: the call may not have happened, or
# happened and its answer was lost. Anything else (CANCELLED above all) fails the test.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class Reader:
    """Follows a task's stream to its end through a list of replicas, resuming after the last seq
    it received whenever the stream drops (and, with `hang_up_every`, hanging up itself now and
    then to resume at once, as a flaky network makes a client do); records every event exactly as
    it arrives (nothing is filtered, so a duplicate or a gap shows)."""

    stubs: list[Any]
    user: Metadata
    task_id: str
    first: int = 0
    hang_up_every: int = 0
    seen: list[int] = field(default_factory=list)
    resumes: int = 0
    hang_ups: int = 0

    async def run(self) -> None:
        replica = self.first
        while True:
            after = self.seen[-1] if self.seen else 0
            call = self.stubs[replica % len(self.stubs)].StreamTaskEvents(
                runtime_pb2.StreamTaskEventsRequest(task_id=self.task_id, after_seq=after), metadata=self.user
            )
            try:
                if await self._follow(call):
                    return
                self.hang_ups += 1
            except grpc.aio.AioRpcError as err:
                if err.code() not in RETRYABLE:
                    pytest.fail(f"stream of {self.task_id}: {err.code().name} {err.details()}")
                self.resumes += 1
                await asyncio.sleep(wait_after(err))
            replica += 1

    async def _follow(self, call: Any) -> bool:
        """True when the stream ended; False when this reader hung up."""
        received = 0
        async for event in call:
            self.seen.append(event.seq)
            received += 1
            if received == self.hang_up_every:
                call.cancel()
                return False
        return True


async def stored_events(stub: Any, user: Metadata, task_id: str) -> list[task_pb2.TaskEvent]:
    events: list[task_pb2.TaskEvent] = []
    token = ""
    while True:
        request = runtime_pb2.ListTaskEventsRequest(task_id=task_id, page_size=1000, page_token=token)
        reply = await retried(partial(stub.ListTaskEvents, request, metadata=user))
        events += reply.events
        token = reply.next_page_token
        if not token:
            return events


@asynccontextmanager
async def in_background(coroutines: Iterable[Coroutine[Any, Any, T]]) -> AsyncIterator[list[asyncio.Task[T]]]:
    """Runs the coroutines as tasks for the block; any still running at its end (the test failed)
    are cancelled, so nothing outlives the test's servers and channels."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def cancel_tasks(stub: Any, user: Metadata, task_ids: list[str]) -> None:
    """Cancelling is idempotent; a terminal task ends its streams."""
    for task_id in task_ids:
        request = runtime_pb2.CancelTaskRequest(task_id=task_id)
        await retried(partial(stub.CancelTask, request, metadata=user))
