"""Proto ↔ domain values, and the validation of every request field (DESIGN §5).

Functions ending in `_in` read a request into domain values, adding a violation per bad field to
a `Violations`; functions ending in `_out` build the protos of responses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from nexus.contract import stepgraph
from nexus.contract.steps import SkillStep
from nexus.kit import idempotency
from nexus.kit.auth import caller
from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.idempotency import RequestKey
from nexus.kit.paging import Keyset
from nexus.kit.protos import etag, timestamp
from nexus.kit.validation import (
    JSON,
    SLUG,
    SLUG_HINT,
    Violations,
    dict_to_struct,
    json_to_value,
    required_uuid,
    text_problem,
    update_paths,
)
from nexus.ontology.v1 import ontology_pb2 as pb
from services.ontology.domain import command_line, definition, ids
from services.ontology.domain.access import Viewer
from services.ontology.domain.definition import InputField, SkillDefinition
from services.ontology.domain.inputs import InputType, url_problem
from services.ontology.domain.models import Agent, Command, Ownership, Participant, Skill, Team, TeamStatus
from services.ontology.domain.snapshot import Snapshot
from services.ontology.store.agents import AgentCursor
from services.ontology.store.commands import CommandCursor, CommandFilter
from services.ontology.store.skills import SkillCursor, SkillFilter
from services.ontology.store.teams import TeamCursor

MAX_NAME = 200
MAX_DESCRIPTION = 4000
MAX_COMMAND_DESCRIPTION = 1000
MAX_ROLE_PROMPT = 32 * 1024
MAX_ROLE = 100
MAX_PARTICIPANTS = 32

AGENT_PATHS = ("name", "description", "avatar_url", "role_prompt")
SKILL_PATHS = ("name", "description", "definition", "is_public")
COMMAND_PATHS = ("agent_id", "target_skill_id", "description")
TEAM_PATHS = ("name", "description", "participants", "status", "config")

_INPUT_TYPES = {
    pb.INPUT_TYPE_STRING: InputType.STRING,
    pb.INPUT_TYPE_INTEGER: InputType.INTEGER,
    pb.INPUT_TYPE_NUMBER: InputType.NUMBER,
    pb.INPUT_TYPE_BOOLEAN: InputType.BOOLEAN,
    pb.INPUT_TYPE_URL: InputType.URL,
    pb.INPUT_TYPE_ENUM: InputType.ENUM,
    pb.INPUT_TYPE_JSON: InputType.JSON,
}
_INPUT_TYPE_NUMBERS = {kind: number for number, kind in _INPUT_TYPES.items()}
_TEAM_STATUSES = {
    pb.TEAM_STATUS_ACTIVE: TeamStatus.ACTIVE,
    pb.TEAM_STATUS_INACTIVE: TeamStatus.INACTIVE,
    pb.TEAM_STATUS_ERROR: TeamStatus.ERROR,
}
_TEAM_STATUS_NUMBERS = {status: number for number, status in _TEAM_STATUSES.items()}
_OWNERSHIPS = {
    pb.OWNERSHIP_UNSPECIFIED: Ownership.ANY,
    pb.OWNERSHIP_SYSTEM: Ownership.SYSTEM,
    pb.OWNERSHIP_MINE: Ownership.MINE,
    pb.OWNERSHIP_PUBLIC: Ownership.PUBLIC,
}


# -- callers and requests -------------------------------------------------------------------------


def viewer() -> Viewer:
    """The verified caller of this RPC."""
    principal = caller()
    return Viewer(
        subject=principal.subject,
        user_id=principal.subject if principal.is_user else None,
        scopes=principal.scopes,
    )


def _request_key(v: Violations, who: Viewer, method: str, request: Message, request_id: str) -> RequestKey | None:
    return idempotency.key(v, request, request_id, principal=who.subject, method=method)


def _masked(v: Violations, mask: field_mask_pb2.FieldMask, resource: Message, allowed: Collection[str]) -> set[str]:
    """An Update's paths, once the resource's id and etag (in `v`) are good: a bad id is reported
    alone rather than among the violations of fields it does not name."""
    v.raise_if_any()
    return update_paths(mask, resource, allowed)


def slug(field: str, value: str) -> str:
    """A required agent or skill id; raises INVALID_ARGUMENT when malformed."""
    v = Violations()
    v.slug(field, value)
    v.raise_if_any()
    return value


def optional_slug(v: Violations, field: str, value: str) -> str:
    if value:
        v.slug(field, value)
    return value


def trigger(v: Violations, field: str, value: str) -> str:
    """A trigger to look up: case-insensitive, like typing it."""
    problem = text_problem(value)
    if problem:
        v.add(field, problem)
        return value
    lowered = value.strip().lower()
    if not lowered:
        v.add(field, "is required")
    elif len(lowered) > 33 or not command_line.TRIGGER.fullmatch(lowered):
        v.add(field, command_line.TRIGGER_HINT)
    return lowered


def one_trigger(value: str) -> str:
    """The trigger of a Get or Resolve: raises INVALID_ARGUMENT when malformed."""
    v = Violations()
    checked = trigger(v, "trigger", value)
    v.raise_if_any()
    return checked


def team_id(value: str) -> str:
    return required_uuid("team_id", value)


def ownership(v: Violations, value: int, *, allow_public: bool) -> Ownership:
    allowed = {pb.OWNERSHIP_SYSTEM, pb.OWNERSHIP_MINE} | ({pb.OWNERSHIP_PUBLIC} if allow_public else set())
    v.enum("ownership", value, pb.Ownership.DESCRIPTOR, required=False, allowed=allowed)
    result: Ownership = _OWNERSHIPS.get(value, Ownership.ANY)  # type: ignore[call-overload]
    if result is Ownership.PUBLIC and not allow_public:
        v.add("ownership", "OWNERSHIP_PUBLIC applies to skills only")
    return result


def command_text(text: str) -> command_line.CommandLine:
    problem = text_problem(text)
    if problem is None:
        try:
            return command_line.parse(text)
        except command_line.LineError as err:
            problem = str(err)
    raise InvalidArgument(
        f"text: {problem}", reason="INVALID_COMMAND_LINE", violations=[FieldViolation("text", problem)]
    )


# -- lists ----------------------------------------------------------------------------------------


def agents(who: Viewer) -> Keyset[AgentCursor]:
    return Keyset(AgentCursor, "ListAgents", who.subject)


def skill_list(request: pb.ListSkillsRequest, who: Viewer) -> tuple[SkillFilter, Keyset[SkillCursor]]:
    v = Violations()
    agent_id = optional_slug(v, "agent_id", request.agent_id)
    owned = ownership(v, request.ownership, allow_public=True)
    v.raise_if_any()
    return SkillFilter(agent_id, owned), Keyset(SkillCursor, "ListSkills", who.subject, agent_id, owned)


def command_list(request: pb.ListCommandsRequest, who: Viewer) -> tuple[CommandFilter, Keyset[CommandCursor]]:
    v = Violations()
    prefix = v.text("prefix", request.prefix, max_len=33).lower()
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    agent_id = optional_slug(v, "agent_id", request.agent_id)
    owned = ownership(v, request.ownership, allow_public=False)
    v.raise_if_any()
    keyset = Keyset(CommandCursor, "ListCommands", who.subject, prefix, agent_id, owned)
    return CommandFilter(prefix, agent_id, owned), keyset


def team_list(request: pb.ListTeamsRequest, who: Viewer) -> tuple[Ownership, Keyset[TeamCursor]]:
    v = Violations()
    owned = ownership(v, request.ownership, allow_public=False)
    v.raise_if_any()
    return owned, Keyset(TeamCursor, "ListTeams", who.subject, owned)


# -- agents ---------------------------------------------------------------------------------------


def agent_in(v: Violations, msg: pb.Agent, agent_id: str, paths: Collection[str], prefix: str = "agent") -> Agent:
    if "name" in paths:
        v.text(f"{prefix}.name", msg.name, max_len=MAX_NAME, required=True)
    if "description" in paths:
        v.text(f"{prefix}.description", msg.description, max_len=MAX_DESCRIPTION)
    if "avatar_url" in paths and msg.avatar_url:
        problem = url_problem(msg.avatar_url)
        if problem:
            v.add(f"{prefix}.avatar_url", problem)
    if "role_prompt" in paths:
        v.text(f"{prefix}.role_prompt", msg.role_prompt, max_len=MAX_ROLE_PROMPT)
    return Agent(
        id=agent_id,
        name=msg.name.strip(),
        description=msg.description,
        avatar_url=msg.avatar_url,
        role_prompt=msg.role_prompt,
    )


def new_agent(request: pb.CreateAgentRequest, who: Viewer) -> tuple[Agent, RequestKey | None]:
    v = Violations()
    v.slug("agent_id", request.agent_id)
    agent = agent_in(v, request.agent, request.agent_id, AGENT_PATHS)
    key = _request_key(v, who, "CreateAgent", request, request.request_id)
    v.raise_if_any()
    return agent, key


def agent_patch(request: pb.UpdateAgentRequest) -> tuple[Agent, set[str], str]:
    """The changes of an UpdateAgent: the agent with the masked fields, the paths, the etag."""
    v = Violations()
    v.slug("agent.id", request.agent.id)
    tag = v.etag("agent.etag", request.agent.etag)
    paths = _masked(v, request.update_mask, request.agent, AGENT_PATHS)
    patch = agent_in(v, request.agent, request.agent.id, paths)
    v.raise_if_any()
    return patch, paths, tag


def slug_and_etag(field: str, value: str, tag: str) -> tuple[str, str]:
    """A Delete's agent or skill id and its etag."""
    v = Violations()
    v.slug(field, value)
    v.etag("etag", tag)
    v.raise_if_any()
    return value, tag


def _snapshot_out(snap: Snapshot | None) -> pb.CapabilitiesSnapshot | None:
    if snap is None:
        return None
    return pb.CapabilitiesSnapshot(
        skills=[
            pb.SkillCapability(
                id=s.id, name=s.name, description=s.description, inputs=[_input_out(i) for i in s.inputs]
            )
            for s in snap.skills
        ],
        commands=[
            pb.CommandCapability(trigger=c.trigger, skill_id=c.skill_id, description=c.description)
            for c in snap.commands
        ],
        compute_time=timestamp(snap.compute_time),
    )


def agent_out(agent: Agent) -> pb.Agent:
    return pb.Agent(
        id=agent.id,
        name=agent.name,
        description=agent.description,
        avatar_url=agent.avatar_url,
        role_prompt=agent.role_prompt,
        capabilities_snapshot=_snapshot_out(agent.snapshot),
        create_time=timestamp(agent.created_at),
        update_time=timestamp(agent.updated_at),
        etag=etag(agent.version),
    )


# -- skills ---------------------------------------------------------------------------------------


def definition_in(v: Violations, msg: pb.SkillDefinition, prefix: str) -> SkillDefinition:
    # Counts first: a request with a million inputs is one violation, not a million.
    if len(msg.inputs) > definition.MAX_INPUTS:
        v.add(f"{prefix}.inputs", f"must have at most {definition.MAX_INPUTS} inputs, got {len(msg.inputs)}")
        return SkillDefinition()
    if len(msg.steps) > stepgraph.MAX_STEPS:
        v.add(f"{prefix}.steps", f"must have at most {stepgraph.MAX_STEPS} steps, got {len(msg.steps)}")
        return SkillDefinition()
    inputs = []
    for index, item in enumerate(msg.inputs):
        path = f"{prefix}.inputs[{index}]"
        before = len(v.items)
        v.enum(f"{path}.type", item.type, pb.InputType.DESCRIPTOR)
        kind = _INPUT_TYPES.get(item.type) if len(v.items) == before else None
        has_default = item.HasField("default_value")
        default: JSON = None
        if has_default:
            before = len(v.items)
            default = v.value(f"{path}.default_value", item.default_value)
            has_default = len(v.items) == before
        inputs.append(
            InputField(
                name=item.name,
                type=kind,
                required=item.required,
                has_default=has_default,
                default=default,
                allowed_values=tuple(item.allowed_values),
                description=item.description,
            )
        )
    steps = []
    for index, step in enumerate(msg.steps):
        args = v.struct(f"{prefix}.steps[{index}].args", step.args)
        steps.append(SkillStep(id=step.id, action=step.action, args=args, depends_on=tuple(step.depends_on)))
    result = SkillDefinition(inputs=tuple(inputs), steps=tuple(steps))
    for problem in definition.validate(result, prefix):
        v.add(problem.field, problem.description)
    return result


def skill_in(v: Violations, msg: pb.Skill, skill_id: str, paths: Collection[str], prefix: str = "skill") -> Skill:
    if "agent_id" in paths:
        v.slug(f"{prefix}.agent_id", msg.agent_id)
    if "name" in paths:
        v.text(f"{prefix}.name", msg.name, max_len=MAX_NAME, required=True)
    if "description" in paths:
        v.text(f"{prefix}.description", msg.description, max_len=MAX_DESCRIPTION)
    defn = definition_in(v, msg.definition, f"{prefix}.definition") if "definition" in paths else SkillDefinition()
    return Skill(
        id=skill_id,
        agent_id=msg.agent_id,
        name=msg.name.strip(),
        description=msg.description,
        definition=defn,
        is_public=msg.is_public,
    )


def new_skill_id(v: Violations, who: Viewer, requested: str) -> str:
    """System skills take the admin's chosen id; user skills get one from the service."""
    if who.user_id is not None:
        if requested:
            v.add("skill_id", "must be empty: the service assigns the ids of user skills")
        return ids.new_user_skill_id()
    if not requested:
        v.add("skill_id", "is required for a system skill")
    elif SLUG.fullmatch(requested) is None or text_problem(requested):
        v.add("skill_id", SLUG_HINT)
    elif ids.is_reserved_skill_id(requested):
        v.add("skill_id", f"must not start with {ids.USER_SKILL_PREFIX!r} (reserved for user skills)")
    return requested


def new_skill(request: pb.CreateSkillRequest, who: Viewer) -> tuple[Skill, RequestKey | None]:
    """A system skill (admin) with its chosen id, or a user's with an assigned one."""
    owner = who.owner_for_new()
    v = Violations()
    skill_id = new_skill_id(v, who, request.skill_id)
    skill = skill_in(v, request.skill, skill_id, (*SKILL_PATHS, "agent_id"))
    key = _request_key(v, who, "CreateSkill", request, request.request_id)
    v.raise_if_any()
    return dataclasses.replace(skill, created_by_user_id=owner), key


def skill_patch(request: pb.UpdateSkillRequest) -> tuple[Skill, set[str], str]:
    v = Violations()
    v.slug("skill.id", request.skill.id)
    tag = v.etag("skill.etag", request.skill.etag)
    paths = _masked(v, request.update_mask, request.skill, SKILL_PATHS)
    patch = skill_in(v, request.skill, request.skill.id, paths)
    v.raise_if_any()
    return patch, paths, tag


def _input_out(item: InputField) -> pb.InputField:
    out = pb.InputField(
        name=item.name,
        type=_INPUT_TYPE_NUMBERS.get(item.type, pb.INPUT_TYPE_UNSPECIFIED) if item.type else pb.INPUT_TYPE_UNSPECIFIED,
        required=item.required,
        allowed_values=item.allowed_values,
        description=item.description,
    )
    if item.has_default:
        out.default_value.CopyFrom(json_to_value(item.default))
    return out


def definition_out(defn: SkillDefinition) -> pb.SkillDefinition:
    return pb.SkillDefinition(
        inputs=[_input_out(i) for i in defn.inputs],
        steps=[
            pb.Step(id=s.id, action=s.action, args=dict_to_struct(s.args), depends_on=s.depends_on) for s in defn.steps
        ],
    )


def skill_out(skill: Skill) -> pb.Skill:
    return pb.Skill(
        id=skill.id,
        agent_id=skill.agent_id,
        name=skill.name,
        description=skill.description,
        definition=definition_out(skill.definition),
        created_by_user_id=skill.created_by_user_id or "",
        is_public=skill.is_public,
        create_time=timestamp(skill.created_at),
        update_time=timestamp(skill.updated_at),
        etag=etag(skill.version),
    )


# -- commands -------------------------------------------------------------------------------------


def command_in(v: Violations, msg: pb.Command, paths: Collection[str], prefix: str = "command") -> Command:
    if "agent_id" in paths:
        v.slug(f"{prefix}.agent_id", msg.agent_id)
    if "target_skill_id" in paths:
        v.slug(f"{prefix}.target_skill_id", msg.target_skill_id)
    if "description" in paths:
        v.text(f"{prefix}.description", msg.description, max_len=MAX_COMMAND_DESCRIPTION)
    return Command(
        trigger=msg.trigger,
        agent_id=msg.agent_id,
        target_skill_id=msg.target_skill_id,
        description=msg.description,
    )


def new_trigger(v: Violations, field: str, value: str) -> str:
    """A trigger being created: exactly lowercase, so what is stored is what people type."""
    v.text(
        field,
        value,
        max_len=33,
        required=True,
        pattern=command_line.TRIGGER,
        pattern_hint=command_line.TRIGGER_HINT,
    )
    return value


def new_command(request: pb.CreateCommandRequest, who: Viewer) -> tuple[Command, RequestKey | None]:
    owner = who.owner_for_new()
    v = Violations()
    new_trigger(v, "command.trigger", request.command.trigger)
    command = command_in(v, request.command, COMMAND_PATHS)
    key = _request_key(v, who, "CreateCommand", request, request.request_id)
    v.raise_if_any()
    return dataclasses.replace(command, owner_user_id=owner), key


def command_patch(request: pb.UpdateCommandRequest) -> tuple[Command, set[str], str]:
    v = Violations()
    checked = trigger(v, "command.trigger", request.command.trigger)
    tag = v.etag("command.etag", request.command.etag)
    paths = _masked(v, request.update_mask, request.command, COMMAND_PATHS)
    patch = command_in(v, request.command, paths)
    v.raise_if_any()
    return dataclasses.replace(patch, trigger=checked), paths, tag


def trigger_and_etag(request: pb.DeleteCommandRequest) -> tuple[str, str]:
    v = Violations()
    checked = trigger(v, "trigger", request.trigger)
    v.etag("etag", request.etag)
    v.raise_if_any()
    return checked, request.etag


def command_out(command: Command) -> pb.Command:
    return pb.Command(
        trigger=command.trigger,
        agent_id=command.agent_id,
        target_skill_id=command.target_skill_id,
        description=command.description,
        owner_user_id=command.owner_user_id or "",
        create_time=timestamp(command.created_at),
        update_time=timestamp(command.updated_at),
        etag=etag(command.version),
    )


def resolved_out(command: Command, skill: Skill, inputs: dict[str, JSON]) -> pb.ResolveCommandResponse:
    return pb.ResolveCommandResponse(
        command=command_out(command), skill=skill_out(skill), inputs=dict_to_struct(inputs)
    )


# -- teams ----------------------------------------------------------------------------------------


def team_in(
    v: Violations, msg: pb.Team, team_id: str, paths: Collection[str], *, creating: bool, prefix: str = "team"
) -> Team:
    if "name" in paths:
        v.text(f"{prefix}.name", msg.name, max_len=MAX_NAME, required=True)
    if "description" in paths:
        v.text(f"{prefix}.description", msg.description, max_len=MAX_DESCRIPTION)
    status = TeamStatus.ACTIVE
    if "status" in paths:
        v.enum(f"{prefix}.status", msg.status, pb.TeamStatus.DESCRIPTOR, required=not creating)
        status = _TEAM_STATUSES.get(msg.status, TeamStatus.ACTIVE)
    config = v.struct(f"{prefix}.config", msg.config) if "config" in paths else {}
    participants: list[Participant] = []
    if "participants" in paths:
        if len(msg.participants) > MAX_PARTICIPANTS:
            v.add(f"{prefix}.participants", f"must have at most {MAX_PARTICIPANTS} participants")
        else:
            for index, item in enumerate(msg.participants):
                path = f"{prefix}.participants[{index}]"
                v.slug(f"{path}.agent_id", item.agent_id)
                v.text(f"{path}.role", item.role, max_len=MAX_ROLE)
                participants.append(
                    Participant(agent_id=item.agent_id, role=item.role, config=v.struct(f"{path}.config", item.config))
                )
    return Team(
        id=team_id,
        name=msg.name.strip(),
        description=msg.description,
        participants=tuple(participants),
        status=status,
        config=config,
    )


def new_team(request: pb.CreateTeamRequest, who: Viewer) -> tuple[Team, RequestKey | None]:
    owner = who.owner_for_new()
    v = Violations()
    team = team_in(v, request.team, ids.new_team_id(), TEAM_PATHS, creating=True)
    key = _request_key(v, who, "CreateTeam", request, request.request_id)
    v.raise_if_any()
    return dataclasses.replace(team, owner_user_id=owner), key


def team_patch(request: pb.UpdateTeamRequest) -> tuple[Team, set[str], str]:
    v = Violations()
    checked = v.uuid("team.id", request.team.id) or ""
    tag = v.etag("team.etag", request.team.etag)
    paths = _masked(v, request.update_mask, request.team, TEAM_PATHS)
    patch = team_in(v, request.team, checked, paths, creating=False)
    v.raise_if_any()
    return patch, paths, tag


def team_and_etag(request: pb.DeleteTeamRequest) -> tuple[str, str]:
    v = Violations()
    checked = v.uuid("team_id", request.team_id) or ""
    v.etag("etag", request.etag)
    v.raise_if_any()
    return checked, request.etag


def team_out(team: Team) -> pb.Team:
    return pb.Team(
        id=team.id,
        name=team.name,
        description=team.description,
        participants=[
            pb.Participant(agent_id=p.agent_id, role=p.role, config=dict_to_struct(p.config)) for p in team.participants
        ],
        status=_TEAM_STATUS_NUMBERS[team.status],
        config=dict_to_struct(team.config),
        owner_user_id=team.owner_user_id or "",
        create_time=timestamp(team.created_at),
        update_time=timestamp(team.updated_at),
        etag=etag(team.version),
    )
