"""The whole platform for end-to-end tests: user, ontology, runtime and gateway servers on the
session database with the seed catalog loaded, and the reference worker serving the catalog's
web researcher (the agent of `/scan`) while a test runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from nexus.kit.config import Settings
from nexus.kit.server import NexusServer
from services.ontology import catalog
from services.user.keys import ensure_key_file
from tests.support import Tokens
from worker.loop import Worker
from worker.options import REQUIRED_SCOPES as WORKER_SCOPES
from worker.options import Options

SCAN_AGENT = "web_researcher_v1"


@dataclass
class Platform:
    gateway: NexusServer
    user: NexusServer
    ontology: NexusServer
    runtime: NexusServer


@pytest.fixture(scope="session")
async def platform(settings: Settings, start_server: Callable[[str], Awaitable[NexusServer]]) -> Platform:
    ensure_key_file(settings.resolved_credential_keys_file)  # what `nexus up` prepares on first run
    await catalog.load(settings)
    user = await start_server("user")
    ontology = await start_server("ontology")
    runtime = await start_server("runtime")
    gateway = await start_server("gateway")
    return Platform(gateway=gateway, user=user, ontology=ontology, runtime=runtime)


@pytest.fixture(scope="session")
def worker_token(tokens: Tokens) -> str:
    """What `nexus up` gives its worker."""
    return tokens.signer.mint("service:worker", kind="service", scopes=WORKER_SCOPES, ttl_s=3600)


Serving = Callable[..., AbstractAsyncContextManager[Worker]]


@pytest.fixture
def serving(platform: Platform, settings: Settings, worker_token: str, tmp_path: Path) -> Serving:
    """`async with serving(agent, …):` runs the reference worker in-process for those agents."""

    @asynccontextmanager
    async def run(*agents: str) -> AsyncIterator[Worker]:
        heartbeat = tmp_path / f"{uuid.uuid4().hex}.heartbeat"
        worker = Worker(
            settings.with_overrides(service_token=worker_token),
            Options(agents=agents, poll_s=0.05, heartbeat_file=heartbeat),
        )
        running = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            assert await asyncio.wait_for(running, 20) == 0

    return run
