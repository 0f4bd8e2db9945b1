"""User service fixtures: the server on the session database, a stub, and signed-up accounts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest

from nexus.kit.auth import bearer_metadata
from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from nexus.kit.server import NexusServer
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from nexus.user.v1 import user_pb2, user_pb2_grpc
from services.user.keys import ensure_key_file
from tests.support import Tokens

if TYPE_CHECKING:
    from nexus.user.v1.user_pb2_grpc import UserServiceAsyncStub

PASSWORD = "correct horse battery"


@dataclass
class Account:
    user_id: str
    email: str
    password: str
    tokens: user_pb2.AuthTokens

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer_metadata(self.tokens.access_token)


SignUp = Callable[..., Awaitable[Account]]


def db(settings: Settings) -> psycopg.Connection:
    """A direct connection as the user service's role: for looking at (and tampering with) rows."""
    return psycopg.connect(service_url(settings, "user", driver="postgresql"), autocommit=True)


# Agents the connection tests refer to; connections check them against the ontology service.
AGENT_IDS = ("agent_creator_v1", "agent_a", "agent_b")


@pytest.fixture(scope="session")
async def user_server(
    settings: Settings,
    start_server: Callable[[str], Awaitable[NexusServer]],
    open_channel: Callable[[str], grpc.aio.Channel],
    tokens: Tokens,
) -> NexusServer:
    ontology = ontology_pb2_grpc.OntologyServiceStub(open_channel((await start_server("ontology")).address))
    admin = tokens.service("ontology.admin")
    for agent_id in AGENT_IDS:
        with contextlib.suppress(grpc.aio.AioRpcError):  # already there from another module
            await ontology.CreateAgent(
                ontology_pb2.CreateAgentRequest(agent=ontology_pb2.Agent(name=agent_id), agent_id=agent_id),
                metadata=admin,
            )
    # What `nexus up` does on first run (prepare_local); without a key the service refuses to start.
    ensure_key_file(settings.resolved_credential_keys_file)
    return await start_server("user")


@pytest.fixture(scope="session")
def stub(user_server: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]) -> UserServiceAsyncStub:
    return user_pb2_grpc.UserServiceStub(open_channel(user_server.address))


@pytest.fixture(scope="session")
def sign_up(stub: UserServiceAsyncStub) -> SignUp:
    """Signs up a fresh account through the API (each costs one Argon2id hash)."""

    async def create(email: str | None = None, password: str = PASSWORD, nickname: str = "") -> Account:
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        reply = await stub.SignUp(user_pb2.SignUpRequest(email=email, password=password, nickname=nickname))
        return Account(reply.user.id, reply.user.email, password, reply.tokens)

    return create


@pytest.fixture(scope="session")
async def alice(sign_up: SignUp) -> Account:
    return await sign_up()


@pytest.fixture(scope="session")
async def bob(sign_up: SignUp) -> Account:
    return await sign_up()
