"""`NexusClient`: the gateway's methods with authentication, token refresh and resumable streams.

Tokens. `sign_in` / `sign_up` keep the account's tokens. Every call sends the access token; one
that expires within `refresh_margin_s` is refreshed first, and a call answered UNAUTHENTICATED is
retried once after a refresh. Refresh tokens rotate: each works once, and presenting a used one
revokes the whole sign-in (DESIGN §2). So refreshes are single-flight (concurrent calls that find
the token stale share one refresh), the new refresh token replaces the old one before anything else
can use it, and a caller that finds the token already replaced just retries with the new one. If
a refresh is refused (the sign-in was revoked, or a refresh answer was lost in transit so the
token was spent) and the client was given the password (`remember=True`), it signs in again.

Streams. `stream_task` yields a task's events exactly once each, in seq order. When the stream
drops with UNAVAILABLE (a restarting gateway or runtime, a server's shutdown drain) or is refused
with RESOURCE_EXHAUSTED and RetryInfo (a server's stream budget is spent), it reconnects with the
last seq it yielded, with backoff and never sooner than the RetryInfo asks, for up to
`reconnect_timeout_s` of consecutive failure; an event at or below that seq is skipped and a gap
makes it reconnect from that seq, so the caller never sees a duplicate or a gap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.gateway.v1 import gateway_pb2_grpc
from nexus.kit.auth import bearer_metadata
from nexus.kit.channels import open_channel
from nexus.kit.config import Settings
from nexus.kit.errors import retry_delay_of
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import artifact_pb2, task_pb2, workspace_pb2
from nexus.user.v1 import user_pb2

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub

log = logging.getLogger("nexus.client")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Metadata = tuple[tuple[str, str], ...]

_RECONNECT_FIRST_S = 0.05
_RECONNECT_MAX_S = 1.0


class NotSignedIn(Exception):
    """A call that needs a token was made before sign-in (or after sign-out)."""


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str


class NexusClient:
    """A client of the gateway at `address` (host:port). Use it as an async context manager, or
    call `close()`. TLS is used when `settings.tls_ca_file` is set."""

    def __init__(
        self,
        address: str,
        *,
        settings: Settings | None = None,
        channel: grpc.aio.Channel | None = None,
        on_tokens: Callable[[user_pb2.AuthTokens], None] | None = None,
        refresh_margin_s: float = 30.0,
        reconnect_timeout_s: float = 30.0,
    ) -> None:
        self._owns_channel = channel is None
        self._channel = channel or open_channel(settings or Settings(), address)
        self.stub: GatewayServiceAsyncStub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._on_tokens = on_tokens
        self._refresh_margin_s = refresh_margin_s
        self._reconnect_timeout_s = reconnect_timeout_s
        self._tokens: user_pb2.AuthTokens | None = None
        self._credentials: Credentials | None = None
        self._refreshing = asyncio.Lock()

    async def __aenter__(self) -> NexusClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    # -- accounts ---------------------------------------------------------------------------------

    @property
    def tokens(self) -> user_pb2.AuthTokens | None:
        """The current tokens (to persist them); None before sign-in."""
        return self._tokens

    def use_tokens(self, tokens: user_pb2.AuthTokens) -> None:
        """Continues a sign-in whose tokens were kept elsewhere."""
        self._set_tokens(tokens)

    async def sign_up(
        self, email: str, password: str, nickname: str = "", *, remember: bool = False
    ) -> user_pb2.SignUpResponse:
        """Creates an account and keeps its tokens. With `remember`, the password is kept in memory
        to sign in again should the sign-in be revoked."""
        reply = await self.stub.SignUp(pb.SignUpRequest(email=email, password=password, nickname=nickname))
        self._credentials = Credentials(email, password) if remember else None
        self._set_tokens(reply.tokens)
        return reply

    async def sign_in(self, email: str, password: str, *, remember: bool = False) -> user_pb2.AuthTokens:
        tokens = await self.stub.SignIn(pb.SignInRequest(email=email, password=password))
        self._credentials = Credentials(email, password) if remember else None
        self._set_tokens(tokens)
        return tokens

    async def sign_out(self) -> None:
        """Ends the sign-in on the server and forgets the tokens and any remembered password."""
        tokens, self._tokens, self._credentials = self._tokens, None, None
        if tokens is not None:
            await self.stub.SignOut(pb.SignOutRequest(refresh_token=tokens.refresh_token))

    async def refresh(self) -> user_pb2.AuthTokens:
        """Refreshes now (normally not needed: calls refresh when they must)."""
        async with self._refreshing:
            return await self._refresh_locked()

    # -- calls ------------------------------------------------------------------------------------

    async def call(
        self, rpc: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, timeout_s: float | None = None
    ) -> Resp:
        """Any unary gateway method (`client.call(client.stub.GetMe, GetMeRequest())`), with the
        access token, refreshed and retried once if the gateway answers UNAUTHENTICATED."""
        token = await self._fresh_access_token()
        try:
            return await rpc(request, metadata=bearer_metadata(token), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
        token = await self._refresh_after(token)
        return await rpc(request, metadata=bearer_metadata(token), timeout=timeout_s)

    async def get_me(self) -> pb.GetMeResponse:
        return await self.call(self.stub.GetMe, pb.GetMeRequest())

    async def run_command(self, text: str, *, session_id: str = "", request_id: str | None = None) -> task_pb2.Task:
        """Runs a slash command. The request id (a fresh one unless given) makes the retry after
        a token refresh, or the caller's own retry with the same id, create one task."""
        request = pb.RunCommandRequest(text=text, session_id=session_id, request_id=request_id or str(uuid.uuid4()))
        return await self.call(self.stub.RunCommand, request)

    async def start_chat(
        self, agent_id: str, text: str, *, session_id: str = "", request_id: str | None = None
    ) -> task_pb2.Task:
        request = pb.StartChatRequest(
            agent_id=agent_id, text=text, session_id=session_id, request_id=request_id or str(uuid.uuid4())
        )
        return await self.call(self.stub.StartChat, request)

    async def get_task(self, task_id: str) -> task_pb2.Task:
        return await self.call(self.stub.GetTask, pb.GetTaskRequest(task_id=task_id))

    async def submit_input(self, task_id: str, text: str) -> task_pb2.Task:
        return await self.call(self.stub.SubmitInput, pb.SubmitInputRequest(task_id=task_id, text=text))

    async def cancel_task(self, task_id: str, reason: str = "") -> task_pb2.Task:
        return await self.call(self.stub.CancelTask, pb.CancelTaskRequest(task_id=task_id, reason=reason))

    async def get_sidebar(self, recent_page_size: int = 0) -> pb.GetSidebarResponse:
        return await self.call(self.stub.GetSidebar, pb.GetSidebarRequest(recent_page_size=recent_page_size))

    async def list_artifacts(
        self, task_id: str = "", page_size: int = 0, page_token: str = ""
    ) -> artifact_pb2.ListArtifactsResponse:
        request = pb.ListArtifactsRequest(task_id=task_id, page_size=page_size, page_token=page_token)
        return await self.call(self.stub.ListArtifacts, request)

    async def search_memories(
        self, query: str, page_size: int = 0, page_token: str = ""
    ) -> workspace_pb2.SearchTaskMemoriesResponse:
        request = pb.SearchMemoriesRequest(query=query, page_size=page_size, page_token=page_token)
        return await self.call(self.stub.SearchMemories, request)

    async def list_agents(self, page_size: int = 0, page_token: str = "") -> ontology_pb2.ListAgentsResponse:
        return await self.call(self.stub.ListAgents, pb.ListAgentsRequest(page_size=page_size, page_token=page_token))

    async def get_agent_settings(self, agent_id: str) -> pb.GetAgentSettingsResponse:
        return await self.call(self.stub.GetAgentSettings, pb.GetAgentSettingsRequest(agent_id=agent_id))

    async def connect_agent(
        self,
        agent_id: str,
        provider: str,
        display_name: str,
        credentials: dict[str, Any],
        *,
        request_id: str | None = None,
    ) -> user_pb2.Connection:
        secret = struct_pb2.Struct()
        secret.update(credentials)
        request = pb.ConnectAgentRequest(
            agent_id=agent_id,
            provider=provider,
            display_name=display_name,
            credentials=secret,
            request_id=request_id or str(uuid.uuid4()),
        )
        return await self.call(self.stub.ConnectAgent, request)

    async def disconnect_agent(self, connection_id: str, etag: str = "") -> None:
        await self.call(self.stub.DisconnectAgent, pb.DisconnectAgentRequest(connection_id=connection_id, etag=etag))

    async def complete_command(self, prefix: str, page_size: int = 0) -> list[ontology_pb2.Command]:
        reply = await self.call(
            self.stub.CompleteCommand, pb.CompleteCommandRequest(prefix=prefix, page_size=page_size)
        )
        return list(reply.commands)

    async def crystallize_skill(
        self, task_id: str, name: str, *, trigger: str = "", description: str = "", request_id: str | None = None
    ) -> pb.CrystallizeSkillResponse:
        request = pb.CrystallizeSkillRequest(
            task_id=task_id,
            name=name,
            trigger=trigger,
            description=description,
            request_id=request_id or str(uuid.uuid4()),
        )
        return await self.call(self.stub.CrystallizeSkill, request)

    # -- streams ----------------------------------------------------------------------------------

    async def stream_task(self, task_id: str, after_seq: int = 0) -> AsyncIterator[task_pb2.TaskEvent]:
        """Every event of the task after `after_seq`, once each and in order, live, until the task
        has ended; reconnects across dropped connections (see the module's documentation)."""
        last = after_seq
        failing_since: float | None = None
        failures = 0
        refreshed = False
        while True:
            token = await self._fresh_access_token()
            call = self.stub.StreamTask(
                pb.StreamTaskRequest(task_id=task_id, after_seq=last), metadata=bearer_metadata(token)
            )
            try:
                gap = False
                async for event in call:
                    if event.seq <= last:
                        continue
                    if event.seq != last + 1:
                        gap = True
                        break
                    last = event.seq
                    failing_since, failures, refreshed = None, 0, False
                    yield event
                if not gap:
                    return
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and not refreshed:
                    await self._refresh_after(token)
                    refreshed = True
                    continue
                retry_after = retry_delay_of(err)
                if code != grpc.StatusCode.UNAVAILABLE and not (
                    code == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is not None
                ):
                    raise
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since >= self._reconnect_timeout_s:
                    raise
                log.info(
                    "stream dropped; resuming",
                    extra={"fields": {"task_id": task_id, "after_seq": last, "code": code.name, "attempt": failures}},
                )
                await asyncio.sleep(max(_backoff(failures), retry_after or 0.0))
                failures += 1
            finally:
                call.cancel()

    # -- tokens -----------------------------------------------------------------------------------

    def _set_tokens(self, tokens: user_pb2.AuthTokens) -> None:
        self._tokens = tokens
        if self._on_tokens is not None:
            self._on_tokens(tokens)

    def _current(self) -> user_pb2.AuthTokens:
        if self._tokens is None:
            raise NotSignedIn("sign in first (NexusClient.sign_in)")
        return self._tokens

    async def _fresh_access_token(self) -> str:
        tokens = self._current()
        expires = tokens.access_token_expire_time.ToSeconds() if tokens.HasField("access_token_expire_time") else 0
        if expires and expires - time.time() < self._refresh_margin_s:
            return await self._refresh_after(tokens.access_token)
        return tokens.access_token

    async def _refresh_after(self, stale_access_token: str) -> str:
        """A fresh access token, refreshing only if nobody replaced `stale_access_token` yet."""
        async with self._refreshing:
            current = self._current()
            if current.access_token != stale_access_token:
                return current.access_token
            return (await self._refresh_locked()).access_token

    async def _refresh_locked(self) -> user_pb2.AuthTokens:
        current = self._current()
        try:
            tokens = await self.stub.Refresh(pb.RefreshRequest(refresh_token=current.refresh_token))
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAUTHENTICATED or self._credentials is None:
                raise
            tokens = await self.stub.SignIn(
                pb.SignInRequest(email=self._credentials.email, password=self._credentials.password)
            )
        self._set_tokens(tokens)
        return tokens


def _backoff(failures: int) -> float:
    delay: float = min(_RECONNECT_MAX_S, _RECONNECT_FIRST_S * 2.0 ** min(failures, 10))
    return delay * (0.5 + random.random() / 2)
