"""Transport: each RPC learns who is calling, validates (convert), calls a store, converts back."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from nexus.kit import paging
from nexus.ontology.v1 import ontology_pb2 as pb
from nexus.ontology.v1 import ontology_pb2_grpc as pb_grpc
from services.ontology import convert
from services.ontology.domain import command_line
from services.ontology.store.agents import AgentStore
from services.ontology.store.commands import CommandStore, command_cursor
from services.ontology.store.skills import SkillStore
from services.ontology.store.teams import TeamStore

Context = Any
EMPTY = empty_pb2.Empty()


class OntologyServicer(pb_grpc.OntologyServiceServicer):
    def __init__(
        self,
        agents: AgentStore,
        skills: SkillStore,
        commands: CommandStore,
        teams: TeamStore,
        max_message_bytes: int,
    ) -> None:
        self._agents = agents
        self._skills = skills
        self._commands = commands
        self._teams = teams
        self._max_message_bytes = max_message_bytes

    def _budget(self) -> paging.Budget:
        return paging.Budget(self._max_message_bytes)

    # -- agents -----------------------------------------------------------------------------

    async def GetAgent(self, request: pb.GetAgentRequest, context: Context) -> pb.Agent:
        agent_id = convert.slug("agent_id", request.agent_id)
        return convert.agent_out(await self._agents.get(agent_id))

    async def ListAgents(self, request: pb.ListAgentsRequest, context: Context) -> pb.ListAgentsResponse:
        page = convert.agents(convert.viewer()).page(request, self._budget(), convert.agent_out)
        await self._agents.page(page)
        return pb.ListAgentsResponse(agents=page.messages, next_page_token=page.next_page_token)

    async def CreateAgent(self, request: pb.CreateAgentRequest, context: Context) -> pb.Agent:
        who = convert.viewer()
        who.require_admin()
        agent, key = convert.new_agent(request, who)
        return convert.agent_out(await self._agents.create(agent, key))

    async def UpdateAgent(self, request: pb.UpdateAgentRequest, context: Context) -> pb.Agent:
        convert.viewer().require_admin()
        patch, paths, etag = convert.agent_patch(request)
        return convert.agent_out(await self._agents.update(patch, paths, etag))

    async def DeleteAgent(self, request: pb.DeleteAgentRequest, context: Context) -> empty_pb2.Empty:
        convert.viewer().require_admin()
        agent_id, etag = convert.slug_and_etag("agent_id", request.agent_id, request.etag)
        await self._agents.delete(agent_id, etag, request.force)
        return EMPTY

    # -- skills -----------------------------------------------------------------------------

    async def GetSkill(self, request: pb.GetSkillRequest, context: Context) -> pb.Skill:
        who = convert.viewer()
        skill_id = convert.slug("skill_id", request.skill_id)
        return convert.skill_out(await self._skills.get(who, skill_id))

    async def ListSkills(self, request: pb.ListSkillsRequest, context: Context) -> pb.ListSkillsResponse:
        who = convert.viewer()
        where, keyset = convert.skill_list(request, who)
        page = keyset.page(request, self._budget(), convert.skill_out)
        await self._skills.page(who, where, page)
        return pb.ListSkillsResponse(skills=page.messages, next_page_token=page.next_page_token)

    async def CreateSkill(self, request: pb.CreateSkillRequest, context: Context) -> pb.Skill:
        who = convert.viewer()
        skill, key = convert.new_skill(request, who)
        return convert.skill_out(await self._skills.create(who, skill, key))

    async def UpdateSkill(self, request: pb.UpdateSkillRequest, context: Context) -> pb.Skill:
        who = convert.viewer()
        patch, paths, etag = convert.skill_patch(request)
        return convert.skill_out(await self._skills.update(who, patch, paths, etag))

    async def DeleteSkill(self, request: pb.DeleteSkillRequest, context: Context) -> empty_pb2.Empty:
        who = convert.viewer()
        skill_id, etag = convert.slug_and_etag("skill_id", request.skill_id, request.etag)
        await self._skills.delete(who, skill_id, etag)
        return EMPTY

    # -- commands ---------------------------------------------------------------------------

    async def GetCommand(self, request: pb.GetCommandRequest, context: Context) -> pb.Command:
        who = convert.viewer()
        trigger = convert.one_trigger(request.trigger)
        return convert.command_out(await self._commands.get(who, trigger))

    async def ListCommands(self, request: pb.ListCommandsRequest, context: Context) -> pb.ListCommandsResponse:
        who = convert.viewer()
        where, keyset = convert.command_list(request, who)
        page = keyset.page(request, self._budget(), convert.command_out, cursor_of=command_cursor)
        await self._commands.page(who, where, page)
        return pb.ListCommandsResponse(commands=page.messages, next_page_token=page.next_page_token)

    async def CreateCommand(self, request: pb.CreateCommandRequest, context: Context) -> pb.Command:
        who = convert.viewer()
        command, key = convert.new_command(request, who)
        return convert.command_out(await self._commands.create(who, command, key))

    async def UpdateCommand(self, request: pb.UpdateCommandRequest, context: Context) -> pb.Command:
        who = convert.viewer()
        patch, paths, etag = convert.command_patch(request)
        return convert.command_out(await self._commands.update(who, patch, paths, etag))

    async def DeleteCommand(self, request: pb.DeleteCommandRequest, context: Context) -> empty_pb2.Empty:
        who = convert.viewer()
        trigger, etag = convert.trigger_and_etag(request)
        await self._commands.delete(who, trigger, etag)
        return EMPTY

    async def ResolveCommand(self, request: pb.ResolveCommandRequest, context: Context) -> pb.ResolveCommandResponse:
        who = convert.viewer()
        line = convert.command_text(request.text)
        command, skill = await self._commands.command_and_skill(who, line.trigger)
        inputs = command_line.bind(skill.definition.inputs, line.arguments)
        return convert.resolved_out(command, skill, inputs)

    # -- teams ------------------------------------------------------------------------------

    async def GetTeam(self, request: pb.GetTeamRequest, context: Context) -> pb.Team:
        who = convert.viewer()
        team_id = convert.team_id(request.team_id)
        return convert.team_out(await self._teams.get(who, team_id))

    async def ListTeams(self, request: pb.ListTeamsRequest, context: Context) -> pb.ListTeamsResponse:
        who = convert.viewer()
        ownership, keyset = convert.team_list(request, who)
        page = keyset.page(request, self._budget(), convert.team_out)
        await self._teams.page(who, ownership, page)
        return pb.ListTeamsResponse(teams=page.messages, next_page_token=page.next_page_token)

    async def CreateTeam(self, request: pb.CreateTeamRequest, context: Context) -> pb.Team:
        who = convert.viewer()
        team, key = convert.new_team(request, who)
        return convert.team_out(await self._teams.create(who, team, key))

    async def UpdateTeam(self, request: pb.UpdateTeamRequest, context: Context) -> pb.Team:
        who = convert.viewer()
        patch, paths, etag = convert.team_patch(request)
        return convert.team_out(await self._teams.update(who, patch, paths, etag))

    async def DeleteTeam(self, request: pb.DeleteTeamRequest, context: Context) -> empty_pb2.Empty:
        who = convert.viewer()
        team_id, etag = convert.team_and_etag(request)
        await self._teams.delete(who, team_id, etag)
        return EMPTY
