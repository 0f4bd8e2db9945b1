"""`lf.a2a.v1.A2AService` (A2A v1.0's normative gRPC binding) on the gateway's gRPC port.
Transport only: the protocol version, the caller's scope, the request checks (`a2a_convert`),
the composition (`a2a_tasks`). The JSON-RPC binding on the HTTP port calls these same methods.

Every method needs a user's access token (the kit's auth interceptor, then `Scope.of`): nothing
runs under an unauthenticated default. Push notifications are not offered (the cards say
`pushNotifications: false`), so their four methods answer PUSH_NOTIFICATION_NOT_SUPPORTED.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from a2a.types import a2a_pb2 as a2a
from a2a.types import a2a_pb2_grpc as a2a_grpc
from google.protobuf import empty_pb2

from gateway import a2a_convert as convert
from gateway import a2a_tasks
from gateway.domain import a2a_protocol as rules
from gateway.downstream import Peers, Scope
from nexus.kit import paging
from nexus.kit.auth import caller

Context = Any


def service_parameter(context: Context, name: str) -> str | None:
    """A2A's service parameters travel as gRPC metadata (lowercase keys) or HTTP headers."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


class A2AServicer(a2a_grpc.A2AServiceServicer):
    def __init__(
        self,
        peers: Peers,
        endpoints: rules.Endpoints,
        version: str,
        max_message_bytes: int,
        default_agent: str = "",
    ) -> None:
        self._peers = peers
        self._default_agent = default_agent
        self.endpoints = endpoints
        self.version = version
        self._max_message_bytes = max_message_bytes

    def _scope(self, context: Context) -> Scope:
        rules.check_version(service_parameter(context, rules.VERSION_PARAMETER))
        return Scope.of(context)

    def _budget(self) -> paging.Budget:
        return paging.Budget(self._max_message_bytes)

    async def SendMessage(self, request: a2a.SendMessageRequest, context: Context) -> a2a.SendMessageResponse:
        scope = self._scope(context)
        send = convert.send(request)
        task = await a2a_tasks.start_turn(self._peers, scope, send, self._default_agent)
        if not send.return_immediately:
            task = await a2a_tasks.settled(self._peers, scope, task)
        answer = await a2a_tasks.snapshot(self._peers, scope, self.endpoints, task, send.history_length, self._budget())
        return a2a.SendMessageResponse(task=answer)

    async def SendStreamingMessage(
        self, request: a2a.SendMessageRequest, context: Context
    ) -> AsyncIterator[a2a.StreamResponse]:
        scope = self._scope(context)
        send = convert.send(request)
        task = await a2a_tasks.start_turn(self._peers, scope, send, self._default_agent)
        stream = a2a_tasks.follow(
            self._peers,
            scope,
            self.endpoints,
            task,
            after_seq=None,
            until_turn_ends=True,
            history_length=send.history_length,
            max_message_bytes=self._max_message_bytes,
        )
        async for item in stream:
            yield item

    async def GetTask(self, request: a2a.GetTaskRequest, context: Context) -> a2a.Task:
        scope = self._scope(context)
        ref = convert.get_task(request)
        task = await a2a_tasks.get_owned(self._peers, scope, ref)
        return await a2a_tasks.snapshot(self._peers, scope, self.endpoints, task, ref.history_length, self._budget())

    async def ListTasks(self, request: a2a.ListTasksRequest, context: Context) -> a2a.ListTasksResponse:
        scope = self._scope(context)
        wanted = convert.list_tasks(request, caller().user_id)
        return await a2a_tasks.list_tasks(self._peers, scope, self.endpoints, wanted, self._budget())

    async def CancelTask(self, request: a2a.CancelTaskRequest, context: Context) -> a2a.Task:
        scope = self._scope(context)
        ref = convert.cancel_task(request)
        return await a2a_tasks.cancel(self._peers, scope, self.endpoints, ref, self._budget())

    async def SubscribeToTask(
        self, request: a2a.SubscribeToTaskRequest, context: Context
    ) -> AsyncIterator[a2a.StreamResponse]:
        scope = self._scope(context)
        ref = convert.subscribe(request)
        after_seq = rules.after_seq(service_parameter(context, rules.AFTER_SEQ_PARAMETER))
        task = await a2a_tasks.get_owned(self._peers, scope, ref)
        if task.status in rules.TERMINAL and after_seq is None:
            raise rules.unsupported(
                "the task has ended: GetTask returns it (or resume with Nexus-After-Seq to replay its last events)"
            )
        stream = a2a_tasks.follow(
            self._peers,
            scope,
            self.endpoints,
            task,
            after_seq=after_seq,
            until_turn_ends=False,
            history_length=None,
            max_message_bytes=self._max_message_bytes,
        )
        async for item in stream:
            yield item

    async def GetExtendedAgentCard(self, request: a2a.GetExtendedAgentCardRequest, context: Context) -> a2a.AgentCard:
        scope = self._scope(context)
        tenant = convert.card_tenant(request)
        return await a2a_tasks.extended_card(self._peers, scope, self.endpoints, self.version, tenant, self._budget())

    def public_card(self) -> a2a.AgentCard:
        """The platform's card for anyone (no token, no downstream call): how to reach and
        authenticate; GetExtendedAgentCard says more to a signed-in caller."""
        return convert.platform_card(self.endpoints, self.version)

    async def agent_card(self, agent_id: str, context: Context) -> a2a.AgentCard:
        """One agent's card, read as the caller (the card route authenticated it; a card's GET
        carries no protocol version)."""
        scope = Scope.of(context)
        tenant = convert.card_tenant(a2a.GetExtendedAgentCardRequest(tenant=agent_id))
        return await a2a_tasks.extended_card(self._peers, scope, self.endpoints, self.version, tenant, self._budget())

    # -- push notifications: not offered ----------------------------------------------------------

    def _no_push(self, context: Context) -> None:
        self._scope(context)
        raise rules.push_not_supported()

    async def CreateTaskPushNotificationConfig(
        self, request: a2a.TaskPushNotificationConfig, context: Context
    ) -> a2a.TaskPushNotificationConfig:
        self._no_push(context)
        return a2a.TaskPushNotificationConfig()

    async def GetTaskPushNotificationConfig(
        self, request: a2a.GetTaskPushNotificationConfigRequest, context: Context
    ) -> a2a.TaskPushNotificationConfig:
        self._no_push(context)
        return a2a.TaskPushNotificationConfig()

    async def ListTaskPushNotificationConfigs(
        self, request: a2a.ListTaskPushNotificationConfigsRequest, context: Context
    ) -> a2a.ListTaskPushNotificationConfigsResponse:
        self._no_push(context)
        return a2a.ListTaskPushNotificationConfigsResponse()

    async def DeleteTaskPushNotificationConfig(
        self, request: a2a.DeleteTaskPushNotificationConfigRequest, context: Context
    ) -> empty_pb2.Empty:
        self._no_push(context)
        return empty_pb2.Empty()
