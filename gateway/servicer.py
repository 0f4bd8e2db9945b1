"""Transport only: validate the gateway's own fields (convert), compose (accounts, tasks, agents),
return. Each method takes the call's Scope: the caller's token and deadline for downstream calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import empty_pb2

from gateway import accounts, agents, convert, skills, tasks
from gateway.downstream import Peers, Scope
from gateway.tickets import TicketSealer
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.gateway.v1 import gateway_pb2_grpc as pb_grpc
from nexus.kit import paging
from nexus.kit.auth import caller
from nexus.kit.validation import required_uuid
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, session_pb2, task_pb2, workspace_pb2
from nexus.user.v1 import user_pb2

Context = Any


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(
        self, peers: Peers, limits: accounts.EdgeLimits, max_message_bytes: int, tickets: TicketSealer
    ) -> None:
        self._peers = peers
        self._limits = limits
        self._max_message_bytes = max_message_bytes
        self._tickets = tickets

    def _budget(self) -> paging.Budget:
        return paging.Budget(self._max_message_bytes)

    # -- accounts (public) ----------------------------------------------------------------------

    async def SignUp(self, request: pb.SignUpRequest, context: Context) -> user_pb2.SignUpResponse:
        convert.sign_up(request)
        scope, client = Scope.of(context, public=True), self._limits.client(context)
        return await accounts.sign_up(self._peers, scope, self._limits, client, request)

    async def SignIn(self, request: pb.SignInRequest, context: Context) -> user_pb2.AuthTokens:
        convert.sign_in(request)
        scope, client = Scope.of(context, public=True), self._limits.client(context)
        return await accounts.sign_in(self._peers, scope, self._limits, client, request)

    async def Refresh(self, request: pb.RefreshRequest, context: Context) -> user_pb2.AuthTokens:
        token = convert.refresh_token(request.refresh_token)
        return await accounts.refresh(self._peers, Scope.of(context, public=True), token)

    async def SignOut(self, request: pb.SignOutRequest, context: Context) -> empty_pb2.Empty:
        token = convert.refresh_token(request.refresh_token)
        return await accounts.sign_out(self._peers, Scope.of(context, public=True), token)

    async def GetMe(self, request: pb.GetMeRequest, context: Context) -> pb.GetMeResponse:
        scope = Scope.of(context)
        user_id = caller().user_id
        after = convert.me(request, user_id)
        response, next_token = await accounts.get_me(self._peers, scope, after, self._budget())
        response.settings_next_page_token = convert.settings_token(user_id, next_token)
        return response

    async def UpdateProfile(self, request: pb.UpdateProfileRequest, context: Context) -> user_pb2.Profile:
        update = convert.update_profile(request)
        return await accounts.update_profile(self._peers, Scope.of(context), update)

    # -- tasks ----------------------------------------------------------------------------------

    async def RunCommand(self, request: pb.RunCommandRequest, context: Context) -> task_pb2.Task:
        run = convert.run_command(request)
        return await tasks.run_command(self._peers, Scope.of(context), run)

    async def StartChat(self, request: pb.StartChatRequest, context: Context) -> task_pb2.Task:
        chat = convert.start_chat(request)
        return await tasks.start_chat(self._peers, Scope.of(context), chat)

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> task_pb2.Task:
        task_id = required_uuid("task_id", request.task_id)
        return await tasks.get_task(self._peers, Scope.of(context), task_id)

    async def ListTasks(self, request: pb.ListTasksRequest, context: Context) -> runtime_pb2.ListTasksResponse:
        wanted = convert.list_tasks(request)
        return await tasks.list_tasks(self._peers, Scope.of(context), wanted)

    async def UpdateTask(self, request: pb.UpdateTaskRequest, context: Context) -> task_pb2.Task:
        update = convert.update_task(request)
        return await tasks.update_task(self._peers, Scope.of(context), update)

    async def CreateStreamTicket(self, request: pb.CreateStreamTicketRequest, context: Context) -> pb.StreamTicket:
        task_id = required_uuid("task_id", request.task_id)
        return await tasks.stream_ticket(self._peers, Scope.of(context), self._tickets, task_id)

    async def StreamTask(self, request: pb.StreamTaskRequest, context: Context) -> AsyncIterator[task_pb2.TaskEvent]:
        task_id, after_seq = convert.stream_task(request)
        async for event in tasks.stream_task(self._peers, Scope.of(context), task_id, after_seq):
            yield event

    async def SubmitInput(self, request: pb.SubmitInputRequest, context: Context) -> task_pb2.Task:
        task_id, text = convert.submit_input(request)
        return await tasks.submit_input(self._peers, Scope.of(context), task_id, text)

    async def CancelTask(self, request: pb.CancelTaskRequest, context: Context) -> task_pb2.Task:
        task_id, reason = convert.cancel_task(request)
        return await tasks.cancel_task(self._peers, Scope.of(context), task_id, reason)

    async def GetSidebar(self, request: pb.GetSidebarRequest, context: Context) -> pb.GetSidebarResponse:
        scope = Scope.of(context)
        user_id = caller().user_id
        recent, cursor = convert.sidebar(request, user_id)
        response, after = await tasks.sidebar(self._peers, scope, recent, cursor, self._budget())
        response.next_page_token = convert.sidebar_token(user_id, recent, after)
        return response

    async def ListArtifacts(
        self, request: pb.ListArtifactsRequest, context: Context
    ) -> artifact_pb2.ListArtifactsResponse:
        wanted = convert.list_artifacts(request)
        return await tasks.list_artifacts(self._peers, Scope.of(context), wanted)

    async def DownloadArtifact(
        self, request: pb.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[artifact_pb2.DownloadArtifactResponse]:
        wanted = convert.download_artifact(request)
        async for part in tasks.download_artifact(self._peers, Scope.of(context), wanted):
            yield part

    async def UpdateArtifact(self, request: pb.UpdateArtifactRequest, context: Context) -> artifact_pb2.Artifact:
        update = convert.update_artifact(request)
        return await tasks.update_artifact(self._peers, Scope.of(context), update)

    async def ListSessions(self, request: pb.ListSessionsRequest, context: Context) -> session_pb2.ListSessionsResponse:
        page_size, page_token = convert.list_sessions(request)
        return await tasks.list_sessions(self._peers, Scope.of(context), page_size, page_token)

    async def CreateSession(self, request: pb.CreateSessionRequest, context: Context) -> session_pb2.Session:
        title, request_id = convert.create_session(request)
        return await tasks.create_session(self._peers, Scope.of(context), title, request_id)

    async def SearchMemories(
        self, request: pb.SearchMemoriesRequest, context: Context
    ) -> workspace_pb2.SearchTaskMemoriesResponse:
        search = convert.search_memories(request)
        return await tasks.search_memories(self._peers, Scope.of(context), search)

    # -- agents, connections, commands ----------------------------------------------------------

    async def ListAgents(self, request: pb.ListAgentsRequest, context: Context) -> ontology_pb2.ListAgentsResponse:
        page_size, page_token = convert.list_agents(request)
        return await agents.list_agents(self._peers, Scope.of(context), page_size, page_token)

    async def GetAgentSettings(
        self, request: pb.GetAgentSettingsRequest, context: Context
    ) -> pb.GetAgentSettingsResponse:
        agent_id = convert.agent_id(request.agent_id)
        return await agents.agent_settings(self._peers, Scope.of(context), agent_id)

    async def ConnectAgent(self, request: pb.ConnectAgentRequest, context: Context) -> user_pb2.Connection:
        new = convert.connect(request)
        return await agents.connect(self._peers, Scope.of(context), new)

    async def DisconnectAgent(self, request: pb.DisconnectAgentRequest, context: Context) -> empty_pb2.Empty:
        connection_id, etag = convert.disconnect(request)
        return await agents.disconnect(self._peers, Scope.of(context), connection_id, etag)

    async def VerifyConnection(self, request: pb.VerifyConnectionRequest, context: Context) -> user_pb2.Connection:
        connection_id = required_uuid("connection_id", request.connection_id)
        return await agents.verify_connection(self._peers, Scope.of(context), connection_id)

    async def CompleteCommand(self, request: pb.CompleteCommandRequest, context: Context) -> pb.CompleteCommandResponse:
        prefix, page_size = convert.complete_command(request)
        return await agents.complete_command(self._peers, Scope.of(context), prefix, page_size)

    async def CrystallizeSkill(
        self, request: pb.CrystallizeSkillRequest, context: Context
    ) -> pb.CrystallizeSkillResponse:
        crystallize = convert.crystallize(request)
        return await skills.crystallize_skill(self._peers, Scope.of(context), crystallize)
