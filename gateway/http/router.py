"""The ASGI app of the gateway's HTTP port: which route goes where.

| route | what |
|---|---|
| `POST /nexus.gateway.v1.GatewayService/<Method>` | every RPC over Connect (JSON, binary) and gRPC-Web (`connect.py`) |
| `GET /v1/tasks/{task_id}/events` | a task's events as Server-Sent Events, resumable by `Last-Event-ID` (`events.py`) |
| `GET /v1/artifacts/{artifact_id}` | an artifact's bytes with its content type (`downloads.py`) |
| `GET /`, `GET /console/<file>` | the web console (`console/`, no build step) |
| `POST /a2a/v1`, `POST /a2a/agents/{agent_id}` | A2A's JSON-RPC binding (`jsonrpc.py`), by the A2A servicer |
| `GET /.well-known/agent-card.json`, `GET /a2a/agents/{id}/.well-known/agent-card.json` | A2A cards (`cards.py`) |

Everything goes through the gRPC servicer's own methods, with the kit's authentication and error
mapping; errors are Connect's error JSON with the details decoded. CORS is off unless
NEXUS_CORS_ORIGINS names origins.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from gateway.a2a_servicer import A2AServicer
from gateway.domain.a2a_protocol import AGENTS_PATH, CARD_PATH, JSONRPC_PATH
from gateway.http.cards import AgentCards
from gateway.http.connect import ConnectFrontDoor
from gateway.http.console import Console
from gateway.http.downloads import ArtifactDownloads
from gateway.http.events import TaskEvents
from gateway.http.jsonrpc import JsonRpc
from gateway.http.web import Cors, Request, json_bytes
from gateway.servicer import GatewayServicer
from gateway.tickets import TicketSealer
from nexus.kit import auth
from nexus.kit.config import Settings
from nexus.kit.http import Authenticator, HttpFrontDoor, Message, Receive, Scope, Send, StreamDrain

RPC_PREFIX = "/nexus.gateway.v1.GatewayService/"
_EVENTS = re.compile(r"/v1/tasks/([^/]+)/events")
_ARTIFACT = re.compile(r"/v1/artifacts/([^/]+)")
_CONSOLE_FILE = re.compile(r"/console/([A-Za-z0-9_.-]+)")
_AGENT_RPC = re.compile(re.escape(AGENTS_PATH) + r"([^/]+)")
_AGENT_CARD = re.compile(re.escape(AGENTS_PATH) + r"([^/]+)" + re.escape(CARD_PATH))


class FrontDoor:
    """The ASGI app of the gateway's HTTP port."""

    def __init__(
        self,
        servicer: GatewayServicer,
        a2a: A2AServicer,
        authenticator: Authenticator,
        tickets: TicketSealer,
        settings: Settings,
        *,
        public_methods: Collection[str],
        domain: str,
    ) -> None:
        self.drain = StreamDrain()
        self._domain = domain
        self._rpcs = ConnectFrontDoor(servicer, authenticator, public_methods, domain, self.drain).app(
            settings.max_message_bytes
        )
        self._events = TaskEvents(servicer, authenticator, tickets, self.drain, domain)
        self._downloads = ArtifactDownloads(servicer, authenticator, domain)
        self._console = Console()
        self._jsonrpc = JsonRpc(a2a, authenticator, self.drain, domain, settings.max_message_bytes)
        self._cards = AgentCards(a2a, authenticator, domain)
        self._cors = Cors(settings.cors_origins)

    def front_door(self) -> HttpFrontDoor:
        return HttpFrontDoor(self, self.drain)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here
        auth.set_caller(None)  # a kept-alive connection's next request starts unauthenticated
        origin = _header(scope, b"origin")
        cors = self._cors.headers(origin)

        async def send_with_cors(message: Message) -> None:
            if cors and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *cors]}
            await send(message)

        request = Request(scope, receive, send_with_cors)
        try:
            await self._route(request, origin)
        finally:
            if request.route and not request.route.startswith("rpc"):
                request.logged()

    async def _route(self, request: Request, origin: str | None) -> None:
        path, method = request.path, request.method
        if method == "OPTIONS":
            request.route = "OPTIONS preflight"
            preflight = self._cors.preflight(origin)
            await request.answer(204 if preflight else 403, b"text/plain", b"", preflight or [])
            return
        if path.startswith(RPC_PREFIX):
            request.route = "rpc"  # the Connect front door logs each call itself
            await self._rpcs(request.scope, request.receive, request.send)
            return
        if method == "POST" and (path == JSONRPC_PATH or _AGENT_RPC.fullmatch(path)):
            request.route = "rpc jsonrpc"  # one log line per call, from the JSON-RPC front door
            agent = _AGENT_RPC.fullmatch(path)
            await self._jsonrpc(request, agent.group(1) if agent else "")
            return
        if method != "GET":
            request.route = f"{method} {path[:80]}"
            await self._refuse(request, 405, "unimplemented", "this route answers GET only")
            return
        if found := _EVENTS.fullmatch(path):
            request.route = "GET /v1/tasks/{task_id}/events"
            await self._events(request, found.group(1))
        elif found := _ARTIFACT.fullmatch(path):
            request.route = "GET /v1/artifacts/{artifact_id}"
            await self._downloads(request, found.group(1))
        elif path in (CARD_PATH, JSONRPC_PATH + CARD_PATH):
            request.route = "GET " + CARD_PATH
            await self._cards.platform(request)
        elif found := _AGENT_CARD.fullmatch(path):
            request.route = "GET " + AGENTS_PATH + "{agent_id}" + CARD_PATH
            await self._cards.agent(request, found.group(1))
        elif path in ("/", "/index.html"):
            request.route = "GET /"
            await self._console(request, "index.html")
        elif (found := _CONSOLE_FILE.fullmatch(path)) and self._console.has(found.group(1)):
            request.route = "GET /console/{file}"
            await self._console(request, found.group(1))
        else:
            request.route = "GET unknown"
            await self._refuse(request, 404, "not_found", "no such route on this port")

    @staticmethod
    async def _refuse(request: Request, status: int, code: str, message: str) -> None:
        await request.answer(status, b"application/json", json_bytes({"code": code, "message": message}))

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Any = scope.get("headers", ())
    for key, value in headers:
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None
