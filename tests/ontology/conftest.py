"""Fixtures for the ontology tests: a client of the session's ontology server, callers, and
builders that create uniquely named objects so tests share one database without interfering."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from nexus.kit.server import NexusServer
from nexus.ontology.v1 import ontology_pb2 as pb
from nexus.ontology.v1 import ontology_pb2_grpc as pb_grpc
from tests.support import Tokens

Metadata = tuple[tuple[str, str], ...]


def unique(prefix: str) -> str:
    """A fresh id that fits both agent/skill ids and triggers (`/` + 32 characters)."""
    return f"{prefix}_{secrets.token_hex(4)}"


@dataclass
class User:
    id: str
    md: Metadata


@dataclass
class Ontology:
    """The client plus the callers every test needs."""

    stub: pb_grpc.OntologyServiceAsyncStub
    channel: grpc.aio.Channel
    tokens: Tokens
    admin: Metadata
    reader: Metadata  # a service token without ontology scopes

    def user(self) -> User:
        user_id, md = self.tokens.user()
        return User(user_id, md)

    async def agent(self, **fields: Any) -> pb.Agent:
        agent_id = fields.pop("id", None) or unique("agent")
        fields.setdefault("name", f"Agent {agent_id}")
        return await self.stub.CreateAgent(
            pb.CreateAgentRequest(agent_id=agent_id, agent=pb.Agent(**fields)), metadata=self.admin
        )

    async def skill(
        self,
        agent_id: str,
        *,
        md: Metadata | None = None,
        skill_id: str | None = None,
        inputs: Sequence[pb.InputField] = (),
        steps: Sequence[pb.Step] | None = None,
        **fields: Any,
    ) -> pb.Skill:
        """A system skill (admin) by default; a user skill with a user's metadata."""
        as_admin = md is None
        fields.setdefault("name", "A skill")
        definition = pb.SkillDefinition(
            inputs=inputs, steps=steps if steps is not None else [pb.Step(id="hello", action="message")]
        )
        request = pb.CreateSkillRequest(
            skill=pb.Skill(agent_id=agent_id, definition=definition, **fields),
            skill_id=(skill_id or unique("skill")) if as_admin else "",
        )
        return await self.stub.CreateSkill(request, metadata=self.admin if as_admin else md)

    async def command(
        self, agent_id: str, skill_id: str, *, md: Metadata | None = None, trigger: str | None = None, **fields: Any
    ) -> pb.Command:
        command = pb.Command(
            trigger=trigger or "/" + unique("c"), agent_id=agent_id, target_skill_id=skill_id, **fields
        )
        return await self.stub.CreateCommand(pb.CreateCommandRequest(command=command), metadata=md or self.admin)


@pytest.fixture(scope="session")
async def ontology_server(start_server: Callable[[str], Any]) -> NexusServer:
    server: NexusServer = await start_server("ontology")
    return server


@pytest.fixture(scope="session")
async def ontology(
    ontology_server: NexusServer, open_channel: Callable[[str], grpc.aio.Channel], tokens: Tokens
) -> Ontology:
    channel = open_channel(ontology_server.address)
    return Ontology(
        stub=pb_grpc.OntologyServiceStub(channel),
        channel=channel,
        tokens=tokens,
        admin=tokens.service("ontology.admin", name="ontology-admin"),
        reader=tokens.service("runtime.worker", name="worker"),
    )


def url_input(name: str = "url", **fields: Any) -> pb.InputField:
    return pb.InputField(name=name, type=pb.INPUT_TYPE_URL, **fields)
