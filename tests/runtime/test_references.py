"""A task's agent, team and origin skill are checked with the ontology service, as the caller."""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from nexus.ontology.v1 import ontology_pb2
from tests.runtime.conftest import Metadata, create_agent, create_skill, create_task, create_team
from tests.support import Tokens, rpc_error


async def private_skill(ontology: Any, user: Metadata, agent: str) -> str:
    skill = ontology_pb2.Skill(agent_id=agent, name="my crystallized skill")
    created = await ontology.CreateSkill(ontology_pb2.CreateSkillRequest(skill=skill), metadata=user)
    return str(created.id)


async def test_a_task_for_an_agent_that_does_not_exist_is_invalid(stub: Any, owner: tuple[str, Metadata]) -> None:
    failure = await rpc_error(create_task(stub, owner[1], "no_such_agent"))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "AGENT_NOT_FOUND")
    assert failure.fields == {"task.agent_id"}


async def test_every_bad_reference_is_reported_at_once(stub: Any, owner: tuple[str, Metadata], agent: str) -> None:
    failure = await rpc_error(
        create_task(stub, owner[1], agent, team_id=str(uuid.uuid4()), origin_skill_id="no_such_skill")
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == {"task.team_id", "task.origin_skill_id"}


async def test_another_users_private_skill_cannot_start_a_task(
    stub: Any, ontology: Any, tokens: Tokens, agent: str
) -> None:
    _, alice = tokens.user()
    _, bob = tokens.user()
    skill = await private_skill(ontology, alice, agent)
    task = await create_task(stub, alice, agent, origin_skill_id=skill)
    assert task.origin_skill_id == skill
    failure = await rpc_error(create_task(stub, bob, agent, origin_skill_id=skill))
    assert (failure.reason, failure.fields) == ("SKILL_NOT_FOUND", {"task.origin_skill_id"})


async def test_a_skill_of_another_agent_is_refused(
    stub: Any, ontology: Any, tokens: Tokens, owner: tuple[str, Metadata], agent: str
) -> None:
    other = await create_agent(ontology, tokens)
    skill = await create_skill(ontology, tokens, other)
    failure = await rpc_error(create_task(stub, owner[1], agent, origin_skill_id=skill))
    assert (failure.reason, failure.fields) == ("SKILL_OF_ANOTHER_AGENT", {"task.origin_skill_id"})
    team = await create_team(ontology, tokens, agent)
    assert (await create_task(stub, owner[1], agent, team_id=team)).team_id == team
