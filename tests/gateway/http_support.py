"""Talking to the gateway's HTTP port as a browser does: Connect JSON requests and a Server-Sent
Events reader, over a real HTTP client (pyqwest, which the Connect library itself uses)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pyqwest

RPC = "/nexus.gateway.v1.GatewayService/"


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: str

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class Stream:
    status: int
    headers: Mapping[str, str]
    events: AsyncIterator[SseEvent]
    body: bytes = b""


@dataclass
class ConnectError:
    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str:
        return str(self.body.get("code"))

    def detail(self, type_name: str) -> dict[str, Any]:
        for detail in self.body.get("details", []):
            if detail["type"] == type_name:
                return dict(detail["debug"])
        raise AssertionError(f"no {type_name} in {self.body}")

    @property
    def reason(self) -> str:
        return str(self.detail("google.rpc.ErrorInfo")["reason"])

    @property
    def domain(self) -> str:
        return str(self.detail("google.rpc.ErrorInfo")["domain"])

    @property
    def fields(self) -> set[str]:
        return {v.get("field", "") for v in self.detail("google.rpc.BadRequest")["fieldViolations"]}


def json_of(reply: pyqwest.FullResponse) -> Any:
    return json.loads(reply.content)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def parse_sse(chunks: AsyncIterator[Any]) -> AsyncIterator[SseEvent]:
    buffer = ""
    async for chunk in chunks:
        buffer += bytes(chunk).decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            if "data" in fields:
                yield SseEvent(fields.get("id"), fields.get("event", "message"), fields["data"])


@dataclass
class Http:
    base: str
    client: pyqwest.Client = field(default_factory=pyqwest.Client)

    async def rpc(
        self, method: str, body: bytes | Mapping[str, Any], *, token: str = "", headers: Mapping[str, str] = {}
    ) -> pyqwest.FullResponse:
        sent = {"content-type": "application/json", **(bearer(token) if token else {}), **headers}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await asyncio.wait_for(self.client.post(self.base + RPC + method, sent, data), 30)

    async def ok(self, method: str, body: Mapping[str, Any], *, token: str = "") -> Any:
        reply = await self.rpc(method, body, token=token)
        assert reply.status == 200, (reply.status, reply.content)
        return json_of(reply)

    async def error(self, method: str, body: bytes | Mapping[str, Any], *, token: str = "", **kw: Any) -> ConnectError:
        reply = await self.rpc(method, body, token=token, **kw)
        assert reply.status != 200, reply.content
        assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
        return ConnectError(reply.status, json_of(reply))

    async def get(self, path: str, headers: Mapping[str, str] = {}) -> pyqwest.FullResponse:
        return await asyncio.wait_for(self.client.get(self.base + path, headers), 30)

    @asynccontextmanager
    async def stream(self, path: str, headers: Mapping[str, str] = {}) -> AsyncIterator[Stream]:
        async with self.client.stream("GET", self.base + path, headers) as response:
            content_type = response.headers.get("content-type", "")
            if response.status != 200 or not content_type.startswith("text/event-stream"):
                body = b"".join([bytes(c) async for c in response.content])
                yield Stream(response.status, dict(response.headers.items()), _none(), body)
            else:
                yield Stream(response.status, dict(response.headers.items()), parse_sse(response.content))

    async def events(self, path: str, headers: Mapping[str, str] = {}, *, timeout_s: float = 30) -> list[SseEvent]:
        """Every event of a stream until it ends (`end` or `abort`)."""
        async with self.stream(path, headers) as opened:
            assert opened.status == 200, (opened.status, opened.body)
            return await asyncio.wait_for(_until_end(opened.events), timeout_s)


async def _none() -> AsyncIterator[SseEvent]:
    return
    yield


async def _until_end(events: AsyncIterator[SseEvent]) -> list[SseEvent]:
    seen = []
    async for event in events:
        seen.append(event)
        if event.event in ("end", "abort"):
            break
    return seen


def seqs(events: list[SseEvent]) -> list[int]:
    """The seqs of the task events (ids and payloads must agree)."""
    out = []
    for event in events:
        if event.event == "message":
            assert event.id == event.json["seq"], event
            out.append(int(event.json["seq"]))
    return out
