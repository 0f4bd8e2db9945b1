"""Transport only: validate the request, call the store (and pure domain rules), convert back."""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf import empty_pb2

from nexus.kit import paging
from nexus.kit.validation import Violations, page_size, update_paths
from nexus.ontology.v1 import ontology_pb2 as pb
from nexus.ontology.v1 import ontology_pb2_grpc as pb_grpc
from services.ontology import convert
from services.ontology.domain import command_line, ids
from services.ontology.store import OntologyStore

Context = Any
EMPTY = empty_pb2.Empty()


class OntologyServicer(pb_grpc.OntologyServiceServicer):
    def __init__(self, store: OntologyStore, max_message_bytes: int) -> None:
        self.store = store
        self.max_message_bytes = max_message_bytes

    def _budget(self) -> paging.Budget:
        return paging.Budget(self.max_message_bytes)

    # -- agents ------------------------------------------------------------------------------------

    async def GetAgent(self, request: pb.GetAgentRequest, context: Context) -> pb.Agent:
        agent_id = convert.slug("agent_id", request.agent_id)
        return convert.agent_out(await self.store.get_agent(agent_id))

    async def ListAgents(self, request: pb.ListAgentsRequest, context: Context) -> pb.ListAgentsResponse:
        who = convert.viewer()
        size = page_size(request.page_size)
        fingerprint = paging.query_fingerprint("ListAgents", who.subject)
        after = convert.cursor(request.page_token, fingerprint, 1)
        agents = await self.store.list_agents(after[0] if after else None, size + 1)
        page, token = convert.page(agents, size, fingerprint, lambda a: [a.id], convert.agent_out, self._budget())
        return pb.ListAgentsResponse(agents=page, next_page_token=token)

    async def CreateAgent(self, request: pb.CreateAgentRequest, context: Context) -> pb.Agent:
        who = convert.viewer()
        who.require_admin()
        v = Violations()
        v.slug("agent_id", request.agent_id)
        agent = convert.agent_in(v, request.agent, request.agent_id, convert.AGENT_PATHS)
        idem = convert.idempotency(v, who, "CreateAgent", request, request.request_id)
        v.raise_if_any()
        return convert.agent_out(await self.store.create_agent(agent, idem))

    async def UpdateAgent(self, request: pb.UpdateAgentRequest, context: Context) -> pb.Agent:
        convert.viewer().require_admin()
        v = Violations()
        v.slug("agent.id", request.agent.id)
        etag = convert.etag(v, "agent.etag", request.agent.etag)
        v.raise_if_any()
        paths = update_paths(request.update_mask, request.agent, convert.AGENT_PATHS)
        patch = convert.agent_in(v, request.agent, request.agent.id, paths)
        v.raise_if_any()
        return convert.agent_out(await self.store.update_agent(patch, paths, etag))

    async def DeleteAgent(self, request: pb.DeleteAgentRequest, context: Context) -> empty_pb2.Empty:
        convert.viewer().require_admin()
        v = Violations()
        v.slug("agent_id", request.agent_id)
        etag = convert.etag(v, "etag", request.etag)
        v.raise_if_any()
        await self.store.delete_agent(request.agent_id, etag, request.force)
        return EMPTY

    # -- skills ------------------------------------------------------------------------------------

    async def GetSkill(self, request: pb.GetSkillRequest, context: Context) -> pb.Skill:
        who = convert.viewer()
        skill_id = convert.slug("skill_id", request.skill_id)
        return convert.skill_out(await self.store.get_skill(who, skill_id))

    async def ListSkills(self, request: pb.ListSkillsRequest, context: Context) -> pb.ListSkillsResponse:
        who = convert.viewer()
        v = Violations()
        agent_id = convert.optional_slug(v, "agent_id", request.agent_id)
        ownership = convert.ownership(v, request.ownership, allow_public=True)
        v.raise_if_any()
        size = page_size(request.page_size)
        fingerprint = paging.query_fingerprint("ListSkills", who.subject, agent_id, ownership)
        after = convert.cursor(request.page_token, fingerprint, 1)
        skills = await self.store.list_skills(who, agent_id, ownership, after[0] if after else None, size + 1)
        page, token = convert.page(skills, size, fingerprint, lambda s: [s.id], convert.skill_out, self._budget())
        return pb.ListSkillsResponse(skills=page, next_page_token=token)

    async def CreateSkill(self, request: pb.CreateSkillRequest, context: Context) -> pb.Skill:
        who = convert.viewer()
        owner = who.owner_for_new()
        v = Violations()
        skill_id = convert.new_skill_id(v, who, request.skill_id)
        skill = convert.skill_in(v, request.skill, skill_id, (*convert.SKILL_PATHS, "agent_id"))
        idem = convert.idempotency(v, who, "CreateSkill", request, request.request_id)
        v.raise_if_any()
        skill = dataclasses.replace(skill, created_by_user_id=owner)
        return convert.skill_out(await self.store.create_skill(who, skill, idem))

    async def UpdateSkill(self, request: pb.UpdateSkillRequest, context: Context) -> pb.Skill:
        who = convert.viewer()
        v = Violations()
        v.slug("skill.id", request.skill.id)
        etag = convert.etag(v, "skill.etag", request.skill.etag)
        v.raise_if_any()
        paths = update_paths(request.update_mask, request.skill, convert.SKILL_PATHS)
        patch = convert.skill_in(v, request.skill, request.skill.id, paths)
        v.raise_if_any()
        return convert.skill_out(await self.store.update_skill(who, patch, paths, etag))

    async def DeleteSkill(self, request: pb.DeleteSkillRequest, context: Context) -> empty_pb2.Empty:
        who = convert.viewer()
        v = Violations()
        v.slug("skill_id", request.skill_id)
        etag = convert.etag(v, "etag", request.etag)
        v.raise_if_any()
        await self.store.delete_skill(who, request.skill_id, etag)
        return EMPTY

    # -- commands ----------------------------------------------------------------------------------

    async def GetCommand(self, request: pb.GetCommandRequest, context: Context) -> pb.Command:
        who = convert.viewer()
        v = Violations()
        trigger = convert.trigger(v, "trigger", request.trigger)
        v.raise_if_any()
        return convert.command_out(await self.store.get_command(who, trigger))

    async def ListCommands(self, request: pb.ListCommandsRequest, context: Context) -> pb.ListCommandsResponse:
        who = convert.viewer()
        v = Violations()
        prefix = v.text("prefix", request.prefix, max_len=33).lower()
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        agent_id = convert.optional_slug(v, "agent_id", request.agent_id)
        ownership = convert.ownership(v, request.ownership, allow_public=False)
        v.raise_if_any()
        size = page_size(request.page_size)
        fingerprint = paging.query_fingerprint("ListCommands", who.subject, prefix, agent_id, ownership)
        after = convert.cursor(request.page_token, fingerprint, 2)
        commands = await self.store.list_commands(
            who, prefix, agent_id, ownership, (after[0], after[1]) if after else None, size + 1
        )
        page, token = convert.page(
            commands,
            size,
            fingerprint,
            lambda c: [c.trigger, c.owner_user_id or ""],
            convert.command_out,
            self._budget(),
        )
        return pb.ListCommandsResponse(commands=page, next_page_token=token)

    async def CreateCommand(self, request: pb.CreateCommandRequest, context: Context) -> pb.Command:
        who = convert.viewer()
        owner = who.owner_for_new()
        v = Violations()
        convert.new_trigger(v, "command.trigger", request.command.trigger)
        command = convert.command_in(v, request.command, convert.COMMAND_PATHS)
        idem = convert.idempotency(v, who, "CreateCommand", request, request.request_id)
        v.raise_if_any()
        command = dataclasses.replace(command, owner_user_id=owner)
        return convert.command_out(await self.store.create_command(who, command, idem))

    async def UpdateCommand(self, request: pb.UpdateCommandRequest, context: Context) -> pb.Command:
        who = convert.viewer()
        v = Violations()
        trigger = convert.trigger(v, "command.trigger", request.command.trigger)
        etag = convert.etag(v, "command.etag", request.command.etag)
        v.raise_if_any()
        paths = update_paths(request.update_mask, request.command, convert.COMMAND_PATHS)
        patch = convert.command_in(v, request.command, paths)
        v.raise_if_any()
        patch = dataclasses.replace(patch, trigger=trigger)
        return convert.command_out(await self.store.update_command(who, patch, paths, etag))

    async def DeleteCommand(self, request: pb.DeleteCommandRequest, context: Context) -> empty_pb2.Empty:
        who = convert.viewer()
        v = Violations()
        trigger = convert.trigger(v, "trigger", request.trigger)
        etag = convert.etag(v, "etag", request.etag)
        v.raise_if_any()
        await self.store.delete_command(who, trigger, etag)
        return EMPTY

    async def ResolveCommand(self, request: pb.ResolveCommandRequest, context: Context) -> pb.ResolveCommandResponse:
        who = convert.viewer()
        line = convert.command_text(request.text)
        command, skill = await self.store.command_and_skill(who, line.trigger)
        inputs = command_line.bind(skill.definition.inputs, line.arguments)
        return convert.resolved_out(command, skill, inputs)

    # -- teams -------------------------------------------------------------------------------------

    async def GetTeam(self, request: pb.GetTeamRequest, context: Context) -> pb.Team:
        who = convert.viewer()
        v = Violations()
        team_id = convert.team_id(v, "team_id", request.team_id)
        v.raise_if_any()
        return convert.team_out(await self.store.get_team(who, team_id))

    async def ListTeams(self, request: pb.ListTeamsRequest, context: Context) -> pb.ListTeamsResponse:
        who = convert.viewer()
        v = Violations()
        ownership = convert.ownership(v, request.ownership, allow_public=False)
        v.raise_if_any()
        size = page_size(request.page_size)
        fingerprint = paging.query_fingerprint("ListTeams", who.subject, ownership)
        after = convert.cursor(request.page_token, fingerprint, 1)
        teams = await self.store.list_teams(who, ownership, after[0] if after else None, size + 1)
        page, token = convert.page(teams, size, fingerprint, lambda t: [t.id], convert.team_out, self._budget())
        return pb.ListTeamsResponse(teams=page, next_page_token=token)

    async def CreateTeam(self, request: pb.CreateTeamRequest, context: Context) -> pb.Team:
        who = convert.viewer()
        owner = who.owner_for_new()
        v = Violations()
        team = convert.team_in(v, request.team, ids.new_team_id(), convert.TEAM_PATHS, creating=True)
        idem = convert.idempotency(v, who, "CreateTeam", request, request.request_id)
        v.raise_if_any()
        team = dataclasses.replace(team, owner_user_id=owner)
        return convert.team_out(await self.store.create_team(who, team, idem))

    async def UpdateTeam(self, request: pb.UpdateTeamRequest, context: Context) -> pb.Team:
        who = convert.viewer()
        v = Violations()
        team_id = convert.team_id(v, "team.id", request.team.id)
        etag = convert.etag(v, "team.etag", request.team.etag)
        v.raise_if_any()
        paths = update_paths(request.update_mask, request.team, convert.TEAM_PATHS)
        patch = convert.team_in(v, request.team, team_id, paths, creating=False)
        v.raise_if_any()
        return convert.team_out(await self.store.update_team(who, patch, paths, etag))

    async def DeleteTeam(self, request: pb.DeleteTeamRequest, context: Context) -> empty_pb2.Empty:
        who = convert.viewer()
        v = Violations()
        team_id = convert.team_id(v, "team_id", request.team_id)
        etag = convert.etag(v, "etag", request.etag)
        v.raise_if_any()
        await self.store.delete_team(who, team_id, etag)
        return EMPTY
