"""Skills through a real channel: system and crystallized user skills, visibility and ownership."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from nexus.ontology.v1 import ontology_pb2 as pb
from tests.ontology.conftest import Ontology, unique, url_input
from tests.support import rpc_error

SCAN_INPUTS = [
    url_input(required=True, description="The page"),
    pb.InputField(
        name="depth",
        type=pb.INPUT_TYPE_ENUM,
        allowed_values=["quick", "deep"],
        default_value=struct_pb2.Value(string_value="quick"),
    ),
    pb.InputField(name="limit", type=pb.INPUT_TYPE_INTEGER, default_value=struct_pb2.Value(number_value=10)),
    pb.InputField(name="options", type=pb.INPUT_TYPE_JSON),
]


def step(step_id: str, action: str = "message", depends_on: tuple[str, ...] = (), **args: Any) -> pb.Step:
    s = pb.Step(id=step_id, action=action, depends_on=depends_on)
    s.args.update(args)
    return s


async def test_admin_creates_a_system_skill_with_typed_inputs_and_a_step_graph(ontology: Ontology) -> None:
    agent = await ontology.agent()
    steps = [
        step("hello", text="Scanning {{ inputs.url }}"),
        step("ask", "ask_user", ("hello",), question="Focus?", variable="focus"),
        step("report", "write_artifact", ("ask",), display_name="r", type="markdown", content="{{ vars.focus }}"),
    ]
    skill = await ontology.skill(agent.id, skill_id=unique("scan"), inputs=SCAN_INPUTS, steps=steps, description="d")
    assert skill.created_by_user_id == "" and not skill.is_public
    assert list(skill.definition.inputs) == SCAN_INPUTS
    assert list(skill.definition.steps) == steps
    assert skill.definition.inputs[2].default_value.number_value == 10
    fetched = await ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=ontology.user().md)
    assert fetched == skill


async def test_a_user_creates_a_private_skill_with_an_id_from_the_service(ontology: Ontology) -> None:
    agent = await ontology.agent()
    owner, other = ontology.user(), ontology.user()
    skill = await ontology.skill(agent.id, md=owner.md, name="My crystallized skill")
    assert skill.id.startswith("usr_") and len(skill.id) == 36
    assert (skill.created_by_user_id, skill.is_public) == (owner.id, False)
    assert await ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=owner.md) == skill
    # Another user cannot tell it exists: every call answers like a missing skill.
    for call in (
        ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=other.md),
        ontology.stub.UpdateSkill(pb.UpdateSkillRequest(skill=pb.Skill(id=skill.id, name="x")), metadata=other.md),
        ontology.stub.DeleteSkill(pb.DeleteSkillRequest(skill_id=skill.id), metadata=other.md),
        ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=ontology.reader),
    ):
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "SKILL_NOT_FOUND")
    listed = await ontology.stub.ListSkills(pb.ListSkillsRequest(agent_id=agent.id), metadata=other.md)
    assert skill.id not in {s.id for s in listed.skills}
    # Admins see and may change every skill.
    assert (await ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=ontology.admin)).id == skill.id


async def test_users_cannot_choose_skill_ids_and_admins_must(ontology: Ontology) -> None:
    agent = await ontology.agent()
    request = pb.CreateSkillRequest(skill=pb.Skill(agent_id=agent.id, name="n"), skill_id="my_own_id")
    failure = await rpc_error(ontology.stub.CreateSkill(request, metadata=ontology.user().md))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"skill_id"})
    for skill_id in ("", "usr_0123", "Bad Id"):
        request.skill_id = skill_id
        failure = await rpc_error(ontology.stub.CreateSkill(request, metadata=ontology.admin))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"skill_id"})
    failure = await rpc_error(ontology.stub.CreateSkill(request, metadata=ontology.reader))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")


async def test_a_skill_needs_an_existing_agent_and_a_free_id(ontology: Ontology) -> None:
    failure = await rpc_error(ontology.skill(unique("ghost")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "AGENT_NOT_FOUND")
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id)
    failure = await rpc_error(ontology.skill(agent.id, skill_id=skill.id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "SKILL_ALREADY_EXISTS")


async def test_a_public_user_skill_is_visible_to_everyone_but_changed_only_by_its_creator(ontology: Ontology) -> None:
    agent = await ontology.agent()
    owner, other = ontology.user(), ontology.user()
    skill = await ontology.skill(agent.id, md=owner.md, is_public=True)
    assert (await ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=other.md)).is_public
    failure = await rpc_error(
        ontology.stub.UpdateSkill(
            pb.UpdateSkillRequest(skill=pb.Skill(id=skill.id, name="mine now")), metadata=other.md
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SKILL_READ_ONLY")
    failure = await rpc_error(ontology.stub.DeleteSkill(pb.DeleteSkillRequest(skill_id=skill.id), metadata=other.md))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    # The creator makes it private again; the other user no longer sees it.
    await ontology.stub.UpdateSkill(
        pb.UpdateSkillRequest(skill=pb.Skill(id=skill.id), update_mask=field_mask_pb2.FieldMask(paths=["is_public"])),
        metadata=owner.md,
    )
    failure = await rpc_error(ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=other.md))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_system_skills_are_changed_only_by_admins(ontology: Ontology) -> None:
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id)
    user = ontology.user()
    failure = await rpc_error(
        ontology.stub.UpdateSkill(pb.UpdateSkillRequest(skill=pb.Skill(id=skill.id, name="x")), metadata=user.md)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SKILL_READ_ONLY")
    updated = await ontology.stub.UpdateSkill(
        pb.UpdateSkillRequest(
            skill=pb.Skill(id=skill.id, name="Renamed", etag=skill.etag, definition=pb.SkillDefinition()),
            update_mask=field_mask_pb2.FieldMask(paths=["name", "definition"]),
        ),
        metadata=ontology.admin,
    )
    assert (updated.name, len(updated.definition.steps), updated.agent_id) == ("Renamed", 0, agent.id)
    failure = await rpc_error(
        ontology.stub.DeleteSkill(pb.DeleteSkillRequest(skill_id=skill.id, etag=skill.etag), metadata=ontology.admin)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    await ontology.stub.DeleteSkill(
        pb.DeleteSkillRequest(skill_id=skill.id, etag=updated.etag), metadata=ontology.admin
    )
    failure = await rpc_error(ontology.stub.GetSkill(pb.GetSkillRequest(skill_id=skill.id), metadata=user.md))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_an_admin_may_change_and_delete_a_user_skill(ontology: Ontology) -> None:
    agent = await ontology.agent()
    user = ontology.user()
    skill = await ontology.skill(agent.id, md=user.md)
    updated = await ontology.stub.UpdateSkill(
        pb.UpdateSkillRequest(skill=pb.Skill(id=skill.id, description="moderated")), metadata=ontology.admin
    )
    assert (updated.description, updated.created_by_user_id) == ("moderated", user.id)
    await ontology.stub.DeleteSkill(pb.DeleteSkillRequest(skill_id=skill.id), metadata=ontology.admin)


async def test_list_filters_by_agent_and_by_ownership(ontology: Ontology) -> None:
    agent, elsewhere = await ontology.agent(), await ontology.agent()
    me, someone = ontology.user(), ontology.user()
    system = await ontology.skill(agent.id)
    mine = await ontology.skill(agent.id, md=me.md)
    public = await ontology.skill(agent.id, md=someone.md, is_public=True)
    hidden = await ontology.skill(agent.id, md=someone.md)
    await ontology.skill(elsewhere.id)

    async def ids(
        md: tuple[tuple[str, str], ...], ownership: pb.Ownership.ValueType = pb.OWNERSHIP_UNSPECIFIED
    ) -> list[str]:
        reply = await ontology.stub.ListSkills(
            pb.ListSkillsRequest(agent_id=agent.id, ownership=ownership), metadata=md
        )
        return [s.id for s in reply.skills]

    assert await ids(me.md) == sorted([system.id, mine.id, public.id])
    assert await ids(me.md, pb.OWNERSHIP_SYSTEM) == [system.id]
    assert await ids(me.md, pb.OWNERSHIP_MINE) == [mine.id]
    assert await ids(me.md, pb.OWNERSHIP_PUBLIC) == [public.id]
    assert await ids(ontology.reader) == sorted([system.id, public.id])
    assert await ids(ontology.admin) == sorted([system.id, mine.id, public.id, hidden.id])
    failure = await rpc_error(ids(ontology.admin, pb.OWNERSHIP_MINE))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")


async def test_every_definition_problem_is_its_own_violation(ontology: Ontology) -> None:
    agent = await ontology.agent()
    inputs = [
        url_input(),
        url_input(),  # duplicate name
        pb.InputField(name="n", type=pb.INPUT_TYPE_INTEGER, default_value=struct_pb2.Value(string_value="ten")),
        pb.InputField(name="mode", type=pb.INPUT_TYPE_ENUM),
        pb.InputField(name="t"),  # no type
        pb.InputField(name="u", type=42),  # type: ignore[arg-type]  # unknown enum number
    ]
    steps = [step("a"), step("a"), step("b", depends_on=("nowhere",))]
    failure = await rpc_error(ontology.skill(agent.id, inputs=inputs, steps=steps))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == {
        "skill.definition.inputs[1].name",
        "skill.definition.inputs[2].default_value",
        "skill.definition.inputs[3].allowed_values",
        "skill.definition.inputs[4].type",
        "skill.definition.inputs[5].type",
        "skill.definition.steps[1].id",
        "skill.definition.steps[2].depends_on[0]",
    }


async def test_a_cyclic_step_graph_is_rejected_naming_the_cycle(ontology: Ontology) -> None:
    agent = await ontology.agent()
    steps = [
        step("fetch", depends_on=("store",)),
        step("parse", depends_on=("fetch",)),
        step("store", depends_on=("parse",)),
    ]
    failure = await rpc_error(ontology.skill(agent.id, steps=steps))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in failure.violations] == [
        ("skill.definition.steps[0].depends_on", "forms a cycle: fetch → store → parse → fetch")
    ]


async def test_oversized_definitions_are_rejected(ontology: Ontology) -> None:
    agent = await ontology.agent()
    failure = await rpc_error(ontology.skill(agent.id, steps=[step(f"s{i}") for i in range(300)]))
    assert failure.fields == {"skill.definition.steps"}
    failure = await rpc_error(ontology.skill(agent.id, steps=[step(f"s{i}", text="x" * 9000) for i in range(40)]))
    assert failure.fields == {"skill.definition"}
