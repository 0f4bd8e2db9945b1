"""Agents through a real channel: system-level objects that admins write and everyone reads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.ontology.v1 import ontology_pb2 as pb
from tests.ontology.conftest import Ontology, unique
from tests.support import rpc_error

DOMAIN = "nexus.ontology.v1"


async def test_admin_creates_an_agent_with_a_chosen_id_and_every_user_reads_it(ontology: Ontology) -> None:
    agent_id = unique("agent_creator_v1")
    created = await ontology.stub.CreateAgent(
        pb.CreateAgentRequest(
            agent_id=agent_id,
            agent=pb.Agent(
                name="Agent Creator",
                description="Builds agents",
                avatar_url="https://cdn.example.com/a.png",
                role_prompt="You create agents.",
            ),
        ),
        metadata=ontology.admin,
    )
    assert (created.id, created.name, created.avatar_url) == (
        agent_id,
        "Agent Creator",
        "https://cdn.example.com/a.png",
    )
    assert created.etag and created.create_time.seconds > 0
    assert created.capabilities_snapshot.compute_time.seconds > 0
    for md in (ontology.user().md, ontology.reader):
        assert await ontology.stub.GetAgent(pb.GetAgentRequest(agent_id=agent_id), metadata=md) == created


async def test_users_and_services_without_the_admin_scope_cannot_write_agents(ontology: Ontology) -> None:
    agent = await ontology.agent()
    for md in (ontology.user().md, ontology.reader):
        calls: list[Awaitable[Any]] = [
            ontology.stub.CreateAgent(
                pb.CreateAgentRequest(agent_id=unique("a"), agent=pb.Agent(name="x")), metadata=md
            ),
            ontology.stub.UpdateAgent(pb.UpdateAgentRequest(agent=pb.Agent(id=agent.id, name="y")), metadata=md),
            ontology.stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id), metadata=md),
        ]
        for call in calls:
            failure = await rpc_error(call)
            assert (failure.code, failure.reason, failure.domain) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "MISSING_SCOPE",
                DOMAIN,
            )


async def test_every_call_needs_a_token(ontology: Ontology) -> None:
    failure = await rpc_error(ontology.stub.ListAgents(pb.ListAgentsRequest()))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def test_agent_fields_are_validated_with_one_violation_each(ontology: Ontology) -> None:
    failure = await rpc_error(
        ontology.stub.CreateAgent(
            pb.CreateAgentRequest(
                agent_id="Agent Creator",
                agent=pb.Agent(name=" ", avatar_url="javascript:alert(1)", role_prompt="x" * 40_000),
                request_id="not-a-uuid",
            ),
            metadata=ontology.admin,
        )
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == {"agent_id", "agent.name", "agent.avatar_url", "agent.role_prompt", "request_id"}
    assert "javascript" not in failure.message


async def test_a_taken_id_is_already_exists(ontology: Ontology) -> None:
    agent = await ontology.agent()
    failure = await rpc_error(ontology.agent(id=agent.id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "AGENT_ALREADY_EXISTS")


async def test_a_repeated_create_with_the_same_request_id_returns_the_first_agent(ontology: Ontology) -> None:
    request = pb.CreateAgentRequest(agent_id=unique("a"), agent=pb.Agent(name="Once"), request_id=str(uuid.uuid4()))
    first, second = await asyncio.gather(
        ontology.stub.CreateAgent(request, metadata=ontology.admin),
        ontology.stub.CreateAgent(request, metadata=ontology.admin),
    )
    assert first == second
    request.agent.name = "Different"
    failure = await rpc_error(ontology.stub.CreateAgent(request, metadata=ontology.admin))
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
        {"request_id"},
    )


async def test_update_changes_the_masked_fields_and_a_stale_etag_is_aborted(ontology: Ontology) -> None:
    agent = await ontology.agent(description="before")
    updated = await ontology.stub.UpdateAgent(
        pb.UpdateAgentRequest(
            agent=pb.Agent(id=agent.id, name="Renamed", description="ignored", etag=agent.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        metadata=ontology.admin,
    )
    assert (updated.name, updated.description) == ("Renamed", "before")
    assert updated.etag != agent.etag
    failure = await rpc_error(
        ontology.stub.UpdateAgent(
            pb.UpdateAgentRequest(agent=pb.Agent(id=agent.id, name="Again", etag=agent.etag)), metadata=ontology.admin
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    failure = await rpc_error(
        ontology.stub.UpdateAgent(
            pb.UpdateAgentRequest(
                agent=pb.Agent(id=agent.id, name="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["capabilities_snapshot"]),
            ),
            metadata=ontology.admin,
        )
    )
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"update_mask"})


async def test_a_missing_agent_is_not_found(ontology: Ontology) -> None:
    failure = await rpc_error(
        ontology.stub.GetAgent(pb.GetAgentRequest(agent_id=unique("ghost")), metadata=ontology.user().md)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "AGENT_NOT_FOUND")


async def test_deleting_an_agent_with_skills_needs_force_and_takes_its_skills_and_commands(ontology: Ontology) -> None:
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id)
    await ontology.command(agent.id, skill.id)
    user = ontology.user()
    private = await ontology.skill(agent.id, md=user.md)
    failure = await rpc_error(
        ontology.stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id), metadata=ontology.admin)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "AGENT_HAS_SKILLS")
    await ontology.stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id, force=True), metadata=ontology.admin)
    for skill_id in (skill.id, private.id):
        failure = await rpc_error(
            ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill_id), metadata=ontology.admin)
        )
        assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_an_agent_in_a_team_is_deleted_only_with_force_and_its_teams_go_to_error(ontology: Ontology) -> None:
    agent, stays = await ontology.agent(), await ontology.agent()
    user = ontology.user()
    team = await ontology.stub.CreateTeam(
        pb.CreateTeamRequest(
            team=pb.Team(name="t", participants=[pb.Participant(agent_id=agent.id), pb.Participant(agent_id=stays.id)])
        ),
        metadata=user.md,
    )
    failure = await rpc_error(
        ontology.stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id), metadata=ontology.admin)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "AGENT_IN_TEAM")
    # A user's private team cannot pin an agent in place.
    await ontology.stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent.id, force=True), metadata=ontology.admin)
    after = await ontology.stub.GetTeam(pb.GetTeamRequest(team_id=team.id), metadata=user.md)
    assert [p.agent_id for p in after.participants] == [stays.id]
    assert after.status == pb.TEAM_STATUS_ERROR and after.etag != team.etag


async def test_list_pages_through_every_agent_once(ontology: Ontology) -> None:
    created = {(await ontology.agent()).id for _ in range(5)}
    md = ontology.user().md
    seen: list[str] = []
    token = ""
    while True:
        page = await ontology.stub.ListAgents(pb.ListAgentsRequest(page_size=2, page_token=token), metadata=md)
        assert len(page.agents) <= 2
        seen += [a.id for a in page.agents]
        token = page.next_page_token
        if not token:
            break
    assert created <= set(seen)
    assert seen == sorted(set(seen))
    # A token belongs to its caller and filters.
    first = await ontology.stub.ListAgents(pb.ListAgentsRequest(page_size=1), metadata=md)
    failure = await rpc_error(
        ontology.stub.ListAgents(
            pb.ListAgentsRequest(page_size=1, page_token=first.next_page_token), metadata=ontology.user().md
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
