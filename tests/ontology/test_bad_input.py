"""Every bad-input class of DESIGN §5 answers INVALID_ARGUMENT naming the field; never INTERNAL
or UNKNOWN: NUL and lone surrogates (also inside JSON values and keys), JSON deeper than 32 or
larger than 1 MiB, oversized text, bad page sizes and tokens, malformed ids, unknown enums."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from nexus.kit import paging
from nexus.kit.server import NexusServer
from nexus.kit.validation import MAX_JSON_DEPTH
from nexus.ontology.v1 import ontology_pb2 as pb
from tests.deep_json import nested_struct, nested_value, with_field
from tests.introspection import (
    assert_health_answers_precisely,
    assert_reflection_answers_precisely,
    buf_curl_list_methods,
)
from tests.ontology.conftest import Ontology, unique
from tests.support import rpc_error

SERVICE = "/nexus.ontology.v1.OntologyService/"
LONE_SURROGATE = b"\xed\xa0\x80"  # UTF-8 bytes of U+D800, which UTF-8 forbids


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def team(**config: Any) -> pb.CreateTeamRequest:
    return pb.CreateTeamRequest(team=pb.Team(name="t", config=struct(config)))


def skill_with_args(agent_id: str, args: dict[str, Any]) -> pb.CreateSkillRequest:
    step = pb.Step(id="s", action="message", args=struct(args))
    return pb.CreateSkillRequest(
        skill=pb.Skill(agent_id=agent_id, name="n", definition=pb.SkillDefinition(steps=[step])), skill_id=unique("s")
    )


# (method, request, caller, the fields that must be named)
Case = tuple[str, Callable[[str], Message], str, set[str]]
CASES: list[Case] = [
    # NUL characters, in text and inside JSON values and keys.
    (
        "CreateAgent",
        lambda a: pb.CreateAgentRequest(agent_id=unique("a"), agent=pb.Agent(name="a\x00b")),
        "admin",
        {"agent.name"},
    ),
    ("CreateTeam", lambda a: team(note="x\x00"), "user", {"team.config"}),
    (
        "CreateTeam",
        lambda a: pb.CreateTeamRequest(team=pb.Team(name="t", config=struct({"k\x00": 1}))),
        "user",
        {"team.config"},
    ),
    (
        "CreateSkill",
        lambda a: skill_with_args(a, {"text": ["ok", {"deep": "\x00"}]}),
        "admin",
        {"skill.definition.steps[0].args"},
    ),
    ("ResolveCommand", lambda a: pb.ResolveCommandRequest(text="/scan \x00"), "user", {"text"}),
    ("ListCommands", lambda a: pb.ListCommandsRequest(prefix="/s\x00"), "user", {"prefix"}),
    # JSON limits: depth and size; numbers that are not finite.
    ("CreateTeam", lambda a: team(deep=nested(32)), "user", {"team.config"}),
    (
        "CreateSkill",
        lambda a: skill_with_args(a, {"big": "x" * (1024 * 1024 + 1)}),
        "admin",
        {"skill.definition.steps[0].args"},
    ),
    ("CreateTeam", lambda a: team(big=["y" * 1024] * 1100), "user", {"team.config"}),
    ("CreateTeam", lambda a: team(n=float("nan")), "user", {"team.config"}),
    (
        "CreateSkill",
        lambda a: pb.CreateSkillRequest(
            skill=pb.Skill(
                agent_id=a,
                name="n",
                definition=pb.SkillDefinition(
                    inputs=[
                        pb.InputField(
                            name="j", type=pb.INPUT_TYPE_JSON, default_value=struct_pb2.Value(number_value=float("inf"))
                        )
                    ]
                ),
            ),
            skill_id=unique("s"),
        ),
        "admin",
        {"skill.definition.inputs[0].default_value"},
    ),
    # Oversized text.
    (
        "CreateAgent",
        lambda a: pb.CreateAgentRequest(agent_id=unique("a"), agent=pb.Agent(name="n" * 201)),
        "admin",
        {"agent.name"},
    ),
    (
        "CreateAgent",
        lambda a: pb.CreateAgentRequest(agent_id=unique("a"), agent=pb.Agent(name="n", description="d" * 4001)),
        "admin",
        {"agent.description"},
    ),
    (
        "CreateAgent",
        lambda a: pb.CreateAgentRequest(
            agent_id=unique("a"), agent=pb.Agent(name="n", avatar_url="https://x.io/" + "p" * 2048)
        ),
        "admin",
        {"agent.avatar_url"},
    ),
    (
        "CreateCommand",
        lambda a: pb.CreateCommandRequest(
            command=pb.Command(trigger="/x", agent_id=a, target_skill_id="s1", description="d" * 1001)
        ),
        "user",
        {"command.description"},
    ),
    (
        "CreateTeam",
        lambda a: pb.CreateTeamRequest(
            team=pb.Team(name="t", participants=[pb.Participant(agent_id=a, role="r" * 101)])
        ),
        "user",
        {"team.participants[0].role"},
    ),
    ("ResolveCommand", lambda a: pb.ResolveCommandRequest(text="/scan " + "x" * 9000), "user", {"text"}),
    ("ListCommands", lambda a: pb.ListCommandsRequest(prefix="/" + "s" * 40), "user", {"prefix"}),
    (
        "UpdateAgent",
        lambda a: pb.UpdateAgentRequest(agent=pb.Agent(id=a, name="n", etag="e" * 100)),
        "admin",
        {"agent.etag"},
    ),
    # Page sizes and tokens.
    ("ListAgents", lambda a: pb.ListAgentsRequest(page_size=-1), "user", {"page_size"}),
    ("ListSkills", lambda a: pb.ListSkillsRequest(page_size=-(2**31)), "user", {"page_size"}),
    ("ListAgents", lambda a: pb.ListAgentsRequest(page_token="not a token!"), "user", {"page_token"}),
    ("ListTeams", lambda a: pb.ListTeamsRequest(page_token="x" * 5000), "user", {"page_token"}),
    # Malformed ids.
    ("GetAgent", lambda a: pb.GetAgentRequest(agent_id="Agent Creator"), "user", {"agent_id"}),
    ("GetAgent", lambda a: pb.GetAgentRequest(agent_id=""), "user", {"agent_id"}),
    ("GetSkill", lambda a: pb.GetSkillRequest(skill_id="x" * 65), "user", {"skill_id"}),
    ("DeleteSkill", lambda a: pb.DeleteSkillRequest(skill_id="../etc"), "user", {"skill_id"}),
    ("GetTeam", lambda a: pb.GetTeamRequest(team_id="not-a-uuid"), "user", {"team_id"}),
    ("GetTeam", lambda a: pb.GetTeamRequest(team_id="123e4567e89b12d3a456426614174000"), "user", {"team_id"}),
    ("GetCommand", lambda a: pb.GetCommandRequest(trigger="scan"), "user", {"trigger"}),
    ("ListSkills", lambda a: pb.ListSkillsRequest(agent_id="NOPE"), "user", {"agent_id"}),
    (
        "CreateAgent",
        lambda a: pb.CreateAgentRequest(agent_id=unique("a"), agent=pb.Agent(name="n"), request_id="42"),
        "admin",
        {"request_id"},
    ),
    (
        "CreateTeam",
        lambda a: pb.CreateTeamRequest(team=pb.Team(name="t", participants=[pb.Participant(agent_id="")])),
        "user",
        {"team.participants[0].agent_id"},
    ),
    # Unknown enum values.
    ("ListSkills", lambda a: pb.ListSkillsRequest(ownership=99), "user", {"ownership"}),  # type: ignore[arg-type]
    ("ListTeams", lambda a: pb.ListTeamsRequest(ownership=-3), "user", {"ownership"}),  # type: ignore[arg-type]
    ("CreateTeam", lambda a: pb.CreateTeamRequest(team=pb.Team(name="t", status=7)), "user", {"team.status"}),  # type: ignore[arg-type]
    (
        "CreateSkill",
        lambda a: pb.CreateSkillRequest(
            skill=pb.Skill(
                agent_id=a,
                name="n",
                definition=pb.SkillDefinition(inputs=[pb.InputField(name="x", type=12)]),  # type: ignore[arg-type]
            ),
        ),
        "user",
        {"skill.definition.inputs[0].type"},
    ),
]


@pytest.fixture(scope="module")
async def agent_id(ontology: Ontology) -> str:
    return (await ontology.agent()).id


def _call(ontology: Ontology, method: str, request: Message, caller: str) -> Any:
    md = {"admin": ontology.admin, "user": ontology.user().md}[caller]
    return getattr(ontology.stub, method)(request, metadata=md)


@pytest.mark.parametrize(("method", "build", "caller", "fields"), CASES)
async def test_bad_input_is_invalid_argument_naming_the_field(
    ontology: Ontology, agent_id: str, method: str, build: Callable[[str], Message], caller: str, fields: set[str]
) -> None:
    failure = await rpc_error(_call(ontology, method, build(agent_id), caller))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure
    assert fields <= failure.fields, failure
    assert failure.domain == "nexus.ontology.v1"


async def test_json_nested_exactly_32_levels_is_accepted(ontology: Ontology) -> None:
    created = await ontology.stub.CreateTeam(team(deep=nested(31)), metadata=ontology.user().md)
    assert created.config.fields["deep"].struct_value.fields


async def test_huge_page_sizes_are_capped_not_rejected(ontology: Ontology) -> None:
    reply = await ontology.stub.ListAgents(pb.ListAgentsRequest(page_size=2**31 - 1), metadata=ontology.user().md)
    assert len(reply.agents) <= 1000


def _raw(ontology: Ontology, method: str) -> Any:
    return ontology.channel.unary_unary(
        SERVICE + method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


@pytest.mark.parametrize(
    ("method", "message", "field"),
    [
        ("GetAgent", pb.GetAgentRequest(agent_id="XXXX"), "agent_id"),
        ("CreateAgent", pb.CreateAgentRequest(agent_id="a1", agent=pb.Agent(name="XXXX")), "agent.name"),
        ("ResolveCommand", pb.ResolveCommandRequest(text="/scan XXXX"), "text"),
        ("CreateTeam", team(note="XXXX"), "team.config.fields.value.string_value"),
        (
            "CreateTeam",
            pb.CreateTeamRequest(team=pb.Team(name="t", config=struct({"XXXX": 1}))),
            "team.config.fields.key",
        ),
    ],
)
async def test_lone_surrogates_anywhere_are_invalid_argument(
    ontology: Ontology, method: str, message: Message, field: str
) -> None:
    body = message.SerializeToString().replace(b"XXXX", LONE_SURROGATE + b"x")
    failure = await rpc_error(_raw(ontology, method)(body, metadata=ontology.admin))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert failure.fields == {field}


async def test_surrogates_and_nul_inside_command_line_json_are_invalid_inputs(ontology: Ontology) -> None:
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id, inputs=[pb.InputField(name="j", type=pb.INPUT_TYPE_JSON)])
    command = await ontology.command(agent.id, skill.id)
    md = ontology.user().md
    for value in ('"\\ud800"', '{"\\u0000": 1}', "[" * 40 + "]" * 40, "[" * 5000):
        failure = await rpc_error(
            ontology.stub.ResolveCommand(pb.ResolveCommandRequest(text=f"{command.trigger} j='{value}'"), metadata=md)
        )
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"inputs.j"}), value[:50]


async def test_forged_page_tokens_with_bad_cursors_are_invalid_argument(ontology: Ontology) -> None:
    user = ontology.user()
    fingerprint = paging.query_fingerprint("ListAgents", user.id)
    for cursor in (["\ud800"], ["a\x00"], [{"x": 1}], [1], ["a", "b"], []):
        raw = json.dumps([fingerprint, cursor]).encode()
        token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        failure = await rpc_error(ontology.stub.ListAgents(pb.ListAgentsRequest(page_token=token), metadata=user.md))
        assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), cursor


async def test_a_request_with_hundreds_of_bad_fields_still_answers_invalid_argument(ontology: Ontology) -> None:
    agent = await ontology.agent()
    steps = [pb.Step(id=f"s{i}", action="message", depends_on=[f"missing{i}"]) for i in range(250)]
    failure = await rpc_error(ontology.skill(agent.id, steps=steps))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.violations[-1].description.endswith("more violations not listed")


async def test_health_and_reflection_answer_hostile_calls_precisely(
    ontology_server: NexusServer, open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    channel = open_channel(ontology_server.address)
    await assert_health_answers_precisely(channel, ontology_server.definition.service_names)
    await assert_reflection_answers_precisely(channel, ontology_server.definition.service_names)


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
async def test_buf_curl_finds_every_method_by_reflection(ontology_server: NexusServer, protocol: str) -> None:
    methods = await asyncio.to_thread(buf_curl_list_methods, ontology_server.address, protocol)
    assert {"nexus.ontology.v1.OntologyService/ListSkills", "grpc.health.v1.Health/List"} <= set(methods)


DEEP = f"is nested deeper than {MAX_JSON_DEPTH} levels"


def _deep_skill(agent_id: str) -> pb.CreateSkillRequest:
    definition = pb.SkillDefinition(
        inputs=[pb.InputField(name="j", type=pb.INPUT_TYPE_JSON)], steps=[pb.Step(id="s", action="message")]
    )
    return pb.CreateSkillRequest(
        skill=pb.Skill(agent_id=agent_id, name="n", definition=definition), skill_id=unique("deep")
    )


def _deep_team(agent_id: str) -> pb.CreateTeamRequest:
    return pb.CreateTeamRequest(team=pb.Team(name="t", participants=[pb.Participant(agent_id=agent_id, role="r")]))


# (method, request, JSON field, Struct or Value)
DEEP_FIELDS: list[tuple[str, Callable[[str], Message], str, str]] = [
    ("CreateSkill", _deep_skill, "skill.definition.steps[0].args", "struct"),
    ("CreateSkill", _deep_skill, "skill.definition.inputs[0].default_value", "value"),
    ("CreateTeam", _deep_team, "team.participants[0].config", "struct"),
    ("CreateTeam", _deep_team, "team.config", "struct"),
]


@pytest.mark.parametrize("depth", [33, 34, 100, 5000])
@pytest.mark.parametrize(("method", "build", "field", "kind"), DEEP_FIELDS, ids=[c[2] for c in DEEP_FIELDS])
async def test_json_nested_too_deep_anywhere_names_its_field(
    ontology: Ontology,
    agent_id: str,
    method: str,
    build: Callable[[str], Message],
    field: str,
    kind: str,
    depth: int,
) -> None:
    payload = nested_value(depth) if kind == "value" else nested_struct(depth)
    body = with_field(build(agent_id), field, payload)
    failure = await rpc_error(_raw(ontology, method)(body, metadata=ontology.admin))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [(v.field, v.description) for v in failure.violations] == [(field, DEEP)]
    assert f"{field}: {DEEP}" in failure.message


async def test_step_args_nested_exactly_32_levels_are_accepted(ontology: Ontology, agent_id: str) -> None:
    body = with_field(_deep_skill(agent_id), "skill.definition.steps[0].args", nested_struct(32))
    created = pb.Skill.FromString(await _raw(ontology, "CreateSkill")(body, metadata=ontology.admin))
    assert created.definition.steps[0].args.fields["a"].struct_value.fields


async def test_refusals_name_what_the_caller_could_have_sent(ontology: Ontology) -> None:
    failure = await rpc_error(ontology.stub.CreateTeam(team(), metadata=ontology.reader))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
    assert failure.message == "this call needs a user's access token or a service token with scope 'ontology.admin'"
    md = ontology.user().md
    failure = await rpc_error(ontology.stub.ListTeams(pb.ListTeamsRequest(ownership=99), metadata=md))  # type: ignore[arg-type]
    assert failure.violations[0].description == "unknown Ownership value 99; one of OWNERSHIP_SYSTEM, OWNERSHIP_MINE"
    failure = await rpc_error(ontology.stub.ListSkills(pb.ListSkillsRequest(ownership=99), metadata=md))  # type: ignore[arg-type]
    assert failure.violations[0].description.endswith("one of OWNERSHIP_SYSTEM, OWNERSHIP_MINE, OWNERSHIP_PUBLIC")
