"""Talking to the gateway as an A2A client that knows nothing of Nexus: the official `a2a-sdk`
clients over gRPC and JSON-RPC, built from the agent cards they resolve, with the bearer token
attached by the SDK's own AuthInterceptor (because the card declares the bearer scheme)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import httpx
from a2a.client import AuthInterceptor, Client, ClientCallContext, ClientConfig, ClientFactory, CredentialService
from a2a.types import a2a_pb2 as a2a

from nexus.kit.validation import struct_to_dict

BINDINGS = ("GRPC", "JSONRPC")
STREAM_TIMEOUT_S = 30.0


class Bearer(CredentialService):
    """The caller's access token, for whatever scheme the card names (it names one: bearer)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_credentials(self, security_scheme_name: str, context: ClientCallContext | None) -> str | None:
        return self._token


@dataclass
class A2A:
    """One SDK client, and what a test needs beside it."""

    client: Client
    card: a2a.AgentCard
    binding: str

    async def send(self, text: str, *, task_id: str = "", context_id: str = "") -> list[a2a.StreamResponse]:
        """Sends a message and collects what the SDK yields until the stream (or call) ends."""
        message = user_message(text, task_id=task_id, context_id=context_id)
        return await asyncio.wait_for(self._collect(message), STREAM_TIMEOUT_S)

    async def _collect(self, message: a2a.Message) -> list[a2a.StreamResponse]:
        return [item async for item in self.client.send_message(a2a.SendMessageRequest(message=message))]

    async def subscribe(self, task_id: str, after_seq: int | None = None) -> list[a2a.StreamResponse]:
        context = None
        if after_seq is not None:
            context = ClientCallContext(service_parameters={"Nexus-After-Seq": str(after_seq)})
        stream = self.client.subscribe(a2a.SubscribeToTaskRequest(id=task_id), context=context)

        async def collect() -> list[a2a.StreamResponse]:
            return [item async for item in stream]

        return await asyncio.wait_for(collect(), STREAM_TIMEOUT_S)


def user_message(text: str, *, message_id: str = "", task_id: str = "", context_id: str = "") -> a2a.Message:
    return a2a.Message(
        message_id=message_id or str(uuid.uuid4()),
        role=a2a.ROLE_USER,
        parts=[a2a.Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def agent_of(task: a2a.Task) -> str:
    """The Nexus agent a task runs on (the task's `nexus` metadata)."""
    nexus = struct_to_dict(task.metadata)["nexus"]
    assert isinstance(nexus, dict)
    return str(nexus["agent_id"])


@asynccontextmanager
async def a2a_client(
    base_url: str, token: str, binding: str, *, streaming: bool = True, polling: bool = False
) -> AsyncIterator[A2A]:
    """Resolves the card at `base_url` (with the token: an agent's card is read as the caller)
    and opens a client on the card's interface of `binding`."""
    channels: list[grpc.aio.Channel] = []

    def channel(url: str) -> grpc.aio.Channel:
        opened = grpc.aio.insecure_channel(url)
        channels.append(opened)
        return opened

    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT_S) as http:
        config = ClientConfig(
            streaming=streaming,
            polling=polling,
            httpx_client=http,
            grpc_channel_factory=channel,
            supported_protocol_bindings=[binding],
        )
        client = await ClientFactory(config).create_from_url(
            base_url,
            interceptors=[AuthInterceptor(Bearer(token))],
            resolver_http_kwargs={"headers": {"Authorization": f"Bearer {token}"}},
        )
        card = await client.get_extended_agent_card(a2a.GetExtendedAgentCardRequest())
        try:
            yield A2A(client, card, binding)
        finally:
            await client.close()
            for opened in channels:
                await opened.close()


def states(items: list[a2a.StreamResponse]) -> list[int]:
    """The task states a stream went through: its first Task's, then each status update's."""
    out: list[int] = []
    for item in items:
        if item.HasField("task"):
            out.append(item.task.status.state)
        elif item.HasField("status_update"):
            out.append(item.status_update.status.state)
    return out


def texts(items: list[a2a.StreamResponse]) -> list[str]:
    """The text of each agent message the stream's status updates carried."""
    return [
        part.text
        for item in items
        if item.HasField("status_update") and item.status_update.status.HasField("message")
        for part in item.status_update.status.message.parts
        if part.text
    ]


def seq_of(item: a2a.StreamResponse) -> int:
    payload = item.WhichOneof("payload")
    assert payload is not None
    metadata = getattr(item, payload).metadata
    return int(metadata["urn:nexus:a2a:event-seq:v1"]["seq"])


def task_of(items: list[a2a.StreamResponse]) -> a2a.Task:
    assert items and items[0].HasField("task"), items
    return items[0].task
