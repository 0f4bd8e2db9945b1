"""`capabilities_snapshot`: recomputed with every skill or command change, consistent under
concurrent writes, and holding only what every user may see."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.ontology.v1 import ontology_pb2 as pb
from tests.ontology.conftest import Ontology, url_input
from tests.support import rpc_error


async def snapshot(ontology: Ontology, agent_id: str) -> pb.CapabilitiesSnapshot:
    agent = await ontology.stub.GetAgent(pb.GetAgentRequest(agent_id=agent_id), metadata=ontology.user().md)
    return agent.capabilities_snapshot


async def expected(ontology: Ontology, agent_id: str) -> tuple[list[str], list[str]]:
    """What the snapshot must say, from the lists a reader without a user sees."""
    skills = await ontology.stub.ListSkills(
        pb.ListSkillsRequest(agent_id=agent_id, page_size=1000), metadata=ontology.reader
    )
    commands = await ontology.stub.ListCommands(
        pb.ListCommandsRequest(agent_id=agent_id, page_size=1000), metadata=ontology.reader
    )
    return [s.id for s in skills.skills], [c.trigger for c in commands.commands]


async def test_the_snapshot_lists_skills_with_inputs_and_commands(ontology: Ontology) -> None:
    agent = await ontology.agent()
    empty = await snapshot(ontology, agent.id)
    assert (list(empty.skills), list(empty.commands)) == ([], [])
    skill = await ontology.skill(agent.id, name="Scan", description="Scans", inputs=[url_input(required=True)])
    command = await ontology.command(agent.id, skill.id, description="Scan a site")
    snap = await snapshot(ontology, agent.id)
    assert list(snap.skills) == [
        pb.SkillCapability(id=skill.id, name="Scan", description="Scans", inputs=[url_input(required=True)])
    ]
    assert list(snap.commands) == [
        pb.CommandCapability(trigger=command.trigger, skill_id=skill.id, description="Scan a site")
    ]
    assert snap.compute_time.ToDatetime() > empty.compute_time.ToDatetime()


async def test_the_snapshot_follows_updates_and_deletes(ontology: Ontology) -> None:
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id, name="Before")
    await ontology.command(agent.id, skill.id)
    await ontology.stub.UpdateSkill(
        pb.UpdateSkillRequest(skill=pb.Skill(id=skill.id, name="After")), metadata=ontology.admin
    )
    assert [s.name for s in (await snapshot(ontology, agent.id)).skills] == ["After"]
    await ontology.stub.DeleteSkill(pb.DeleteSkillRequest(skill_id=skill.id), metadata=ontology.admin)
    snap = await snapshot(ontology, agent.id)
    assert (list(snap.skills), list(snap.commands)) == ([], [])  # the command went with its skill


async def test_private_user_skills_and_user_commands_stay_out_public_skills_go_in(ontology: Ontology) -> None:
    agent = await ontology.agent()
    user = ontology.user()
    private = await ontology.skill(agent.id, md=user.md)
    await ontology.command(agent.id, private.id, md=user.md)
    snap = await snapshot(ontology, agent.id)
    assert (list(snap.skills), list(snap.commands)) == ([], [])
    await ontology.stub.UpdateSkill(
        pb.UpdateSkillRequest(
            skill=pb.Skill(id=private.id, is_public=True), update_mask=field_mask_pb2.FieldMask(paths=["is_public"])
        ),
        metadata=user.md,
    )
    snap = await snapshot(ontology, agent.id)
    assert [s.id for s in snap.skills] == [private.id]
    assert list(snap.commands) == []


async def test_the_snapshot_is_output_only(ontology: Ontology) -> None:
    agent = await ontology.agent()
    request = pb.UpdateAgentRequest(
        agent=pb.Agent(id=agent.id, capabilities_snapshot=pb.CapabilitiesSnapshot(skills=[pb.SkillCapability(id="x")])),
        update_mask=field_mask_pb2.FieldMask(paths=["capabilities_snapshot"]),
    )
    failure = await rpc_error(ontology.stub.UpdateAgent(request, metadata=ontology.admin))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    created = await ontology.stub.CreateAgent(
        pb.CreateAgentRequest(
            agent_id=agent.id + "_2",
            agent=pb.Agent(name="n", capabilities_snapshot=request.agent.capabilities_snapshot),
        ),
        metadata=ontology.admin,
    )
    assert list(created.capabilities_snapshot.skills) == []


async def test_the_snapshot_stays_consistent_when_skill_and_command_writes_race(ontology: Ontology) -> None:
    agent = await ontology.agent()
    users = [ontology.user() for _ in range(3)]
    for _ in range(3):
        seed = [await ontology.skill(agent.id) for _ in range(3)]
        writes: list[Awaitable[Any]] = [
            *[ontology.skill(agent.id) for _ in range(12)],
            *[ontology.skill(agent.id, md=u.md, is_public=True) for u in users],
            *[ontology.skill(agent.id, md=u.md) for u in users],
            *[ontology.command(agent.id, s.id) for s in seed],
            ontology.stub.UpdateSkill(
                pb.UpdateSkillRequest(skill=pb.Skill(id=seed[0].id, name="Renamed")), metadata=ontology.admin
            ),
        ]
        await asyncio.gather(*writes)
        snap = await snapshot(ontology, agent.id)
        skills, triggers = await expected(ontology, agent.id)
        assert [s.id for s in snap.skills] == skills
        assert [c.trigger for c in snap.commands] == triggers
        assert {s.name for s in snap.skills if s.id == seed[0].id} == {"Renamed"}
        # Deletes race too: half of this round's skills go at once.
        await asyncio.gather(
            *[
                ontology.stub.DeleteSkill(pb.DeleteSkillRequest(skill_id=skill_id), metadata=ontology.admin)
                for skill_id in skills[::2]
            ]
        )
        snap = await snapshot(ontology, agent.id)
        skills, triggers = await expected(ontology, agent.id)
        assert ([s.id for s in snap.skills], [c.trigger for c in snap.commands]) == (skills, triggers)
