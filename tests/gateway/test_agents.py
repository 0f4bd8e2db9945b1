"""Agents through the gateway: listing, an agent's settings page, connecting and disconnecting
credentials (which never come back out), and slash-command completion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.validation import JSON, dict_to_struct
from nexus.ontology.v1 import ontology_pb2 as onto
from tests.gateway.conftest import Account, Catalog, SignUp
from tests.support import rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub


async def test_list_agents_pages_through_every_agent(gw: Stub, alice: Account, catalog: Catalog) -> None:
    created = {await catalog.agent() for _ in range(3)}
    seen: list[str] = []
    token = ""
    while True:
        page = await gw.ListAgents(pb.ListAgentsRequest(page_size=2, page_token=token), metadata=alice.md)
        assert len(page.agents) <= 2
        seen += [a.id for a in page.agents]
        token = page.next_page_token
        if not token:
            break
    assert created <= set(seen) and seen == sorted(seen)


async def test_agent_settings_hold_the_agent_its_capabilities_and_only_the_callers_connections(
    gw: Stub, sign_up: SignUp, catalog: Catalog
) -> None:
    ada, eve = await sign_up(), await sign_up()
    agent_id = await catalog.agent()
    skill = await catalog.skill(agent_id)
    command = await catalog.command(agent_id, skill.id)
    secret: dict[str, JSON] = {"api_key": "sk-very-secret"}
    connect = pb.ConnectAgentRequest(
        agent_id=agent_id, provider="notion_oauth", display_name="Ada's Notion", credentials=dict_to_struct(secret)
    )
    mine = await gw.ConnectAgent(connect, metadata=ada.md)
    assert (mine.user_id, mine.agent_id, mine.provider) == (ada.user_id, agent_id, "notion_oauth")
    assert mine.credentials_fingerprint and "sk-very-secret" not in str(mine)
    theirs = await gw.ConnectAgent(connect, metadata=eve.md)

    settings = await gw.GetAgentSettings(pb.GetAgentSettingsRequest(agent_id=agent_id), metadata=ada.md)
    assert settings.agent.id == agent_id
    assert [s.id for s in settings.agent.capabilities_snapshot.skills] == [skill.id]
    assert [c.trigger for c in settings.agent.capabilities_snapshot.commands] == [command.trigger]
    assert [c.id for c in settings.connections] == [mine.id]
    assert "sk-very-secret" not in str(settings)

    await gw.DisconnectAgent(pb.DisconnectAgentRequest(connection_id=mine.id, etag=mine.etag), metadata=ada.md)
    after = await gw.GetAgentSettings(pb.GetAgentSettingsRequest(agent_id=agent_id), metadata=ada.md)
    assert list(after.connections) == []
    again = await rpc_error(gw.DisconnectAgent(pb.DisconnectAgentRequest(connection_id=mine.id), metadata=ada.md))
    assert (again.code, again.domain) == (grpc.StatusCode.NOT_FOUND, "nexus.user.v1")
    kept = await gw.GetAgentSettings(pb.GetAgentSettingsRequest(agent_id=agent_id), metadata=eve.md)
    assert [c.id for c in kept.connections] == [theirs.id]


async def test_agent_settings_of_an_unknown_agent_and_a_connection_to_it_are_refused(gw: Stub, alice: Account) -> None:
    missing = await rpc_error(
        gw.GetAgentSettings(pb.GetAgentSettingsRequest(agent_id="no_such_agent"), metadata=alice.md)
    )
    assert (missing.code, missing.domain) == (grpc.StatusCode.NOT_FOUND, "nexus.ontology.v1")
    connect = pb.ConnectAgentRequest(agent_id="no_such_agent", provider="p", display_name="d")
    refused = await rpc_error(gw.ConnectAgent(connect, metadata=alice.md))
    assert (refused.code, refused.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "nexus.user.v1")


async def test_completion_lists_the_commands_whose_trigger_starts_with_the_prefix(
    gw: Stub, alice: Account, catalog: Catalog
) -> None:
    agent_id = await catalog.agent()
    skill = await catalog.skill(agent_id)
    stem = agent_id.replace("agent_", "k")  # a prefix no other test's trigger has
    for suffix in ("alpha", "beta", "gamma"):
        command = onto.Command(trigger=f"/{stem}{suffix}", agent_id=agent_id, target_skill_id=skill.id)
        await catalog.stub.CreateCommand(onto.CreateCommandRequest(command=command), metadata=catalog.admin)
    everything = await gw.CompleteCommand(pb.CompleteCommandRequest(prefix=f"/{stem}"), metadata=alice.md)
    assert [c.trigger for c in everything.commands] == [f"/{stem}alpha", f"/{stem}beta", f"/{stem}gamma"]
    narrowed = await gw.CompleteCommand(pb.CompleteCommandRequest(prefix=f"{stem}g"), metadata=alice.md)
    assert [c.trigger for c in narrowed.commands] == [f"/{stem}gamma"]
    first = await gw.CompleteCommand(pb.CompleteCommandRequest(prefix=f"/{stem}", page_size=2), metadata=alice.md)
    assert len(first.commands) == 2
