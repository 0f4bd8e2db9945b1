"""The test harness: one real Postgres per session, real servers on free ports, real channels.

Postgres is the embedded server (in a temporary directory) unless NEXUS_TEST_DATABASE_URL names
an admin URL. Either way the session gets its own database and its own role prefix, so sessions
can share a cluster, and everything is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest

from launch.registry import BY_NAME, OWNING, SERVICES
from nexus.kit import migrations, postgres
from nexus.kit.config import Settings
from nexus.kit.server import NexusServer, running
from nexus.kit.tokens import TokenSigner, ensure_signing_key
from tests.support import Tokens, private_postgres


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("NEXUS_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with private_postgres() as server:
        yield server.url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _isolated_settings(admin_url: str, data_dir: Path) -> Settings:
    """Settings for a database and role set of its own. Every service gets a free port up front,
    so services find each other through `settings.address(peer)` as they do in production."""
    suffix = secrets.token_hex(4)
    return Settings(
        data_dir=data_dir,
        ports={spec.name: free_port() for spec in SERVICES},
        http_ports={spec.name: free_port() for spec in SERVICES if spec.default_http_port is not None},
        database_url=admin_url,
        database_name=f"nexus_test_{suffix}",
        db_role_prefix=f"nt{suffix}_",
        db_pool_size=5,
        shutdown_grace_s=1.0,
        # Schedules made due by a test fire within a fraction of a second.
        scheduler_poll_s=0.2,
        # Every test client is 127.0.0.1, and the suite signs up hundreds of accounts: the
        # per-address limits are proved on servers of their own (tests/*/test_limits.py).
        auth_address_burst=1_000_000,
    )


@pytest.fixture(scope="session")
def settings(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The session's migrated database, shared by every server the tests start."""
    test_settings = _isolated_settings(pg_admin_url, tmp_path_factory.mktemp("nexus"))
    ensure_signing_key(test_settings.resolved_signing_keys_dir)
    postgres.bootstrap(test_settings, OWNING)
    migrations.upgrade_all(test_settings, OWNING)
    yield test_settings
    postgres.drop(test_settings, OWNING)


@pytest.fixture
def scratch_settings(pg_admin_url: str, tmp_path: Path) -> Iterator[Settings]:
    """A bootstrapped but unmigrated database of its own, for tests that migrate up and down
    without disturbing the session database."""
    scratch = _isolated_settings(pg_admin_url, tmp_path)
    postgres.bootstrap(scratch, OWNING)
    yield scratch
    postgres.drop(scratch, OWNING)


@pytest.fixture(scope="session")
def tokens(settings: Settings) -> Tokens:
    key = ensure_signing_key(settings.resolved_signing_keys_dir)
    return Tokens(TokenSigner(key, issuer=settings.token_issuer, audience=settings.token_audience))


@pytest.fixture(scope="session")
async def start_server(settings: Settings) -> AsyncIterator[Callable[[str], Awaitable[NexusServer]]]:
    """Starts a service once per session (per name) on its port; stopped at the end."""
    started: dict[str, NexusServer] = {}
    async with AsyncExitStack() as stack:

        async def start(name: str) -> NexusServer:
            if name not in started:
                started[name] = await stack.enter_async_context(
                    running(BY_NAME[name], settings, port=settings.port(name))
                )
            return started[name]

        yield start


@pytest.fixture(scope="session")
async def open_channel() -> AsyncIterator[Callable[[str], grpc.aio.Channel]]:
    """Channels to test servers, closed at the end of the session."""
    channels: list[grpc.aio.Channel] = []
    loop = asyncio.get_running_loop()

    def open_(address: str) -> grpc.aio.Channel:
        # A channel belongs to the loop current when it is made. Sync fixtures call this outside
        # the session's loop, where pytest-asyncio may have left no current loop at all.
        asyncio.set_event_loop(loop)
        channel = grpc.aio.insecure_channel(address)
        channels.append(channel)
        return channel

    yield open_
    for channel in channels:
        await channel.close()
