"""A2A agent cards (A2A §8) on the HTTP port, as proto3 JSON (camelCase):

- `GET /.well-known/agent-card.json`: the platform's card, public. It needs no token and calls
  nothing: where the interfaces are, the bearer scheme, the capabilities (streaming, the
  event-seq extension, an extended card), and the slash-command skill.
- `GET /a2a/agents/{agent_id}/.well-known/agent-card.json`: one agent's card, built from its
  capabilities snapshot as the caller (so it needs the caller's bearer token: nothing is read
  under an unauthenticated default; 401 with `WWW-Authenticate: Bearer` without one). So an A2A
  client resolves `<base>/a2a/agents/<agent_id>` like any agent's base URL.

Both carry an ETag (a digest of the card) and Cache-Control (A2A §8.6); If-None-Match answers 304.
"""

from __future__ import annotations

import hashlib

from a2a.types import a2a_pb2 as a2a
from google.protobuf import json_format

from gateway.a2a_servicer import A2AServicer
from gateway.http.jsonrpc import HttpCallContext
from gateway.http.web import Request, json_bytes
from nexus.kit import connect
from nexus.kit.http import Authenticator

PUBLIC_MAX_AGE_S = 300
# An agent's card changes with its skills and commands, and is read with a token: kept briefly,
# by the caller only.
AGENT_MAX_AGE_S = 60


class AgentCards:
    def __init__(self, servicer: A2AServicer, authenticator: Authenticator, domain: str) -> None:
        self._servicer = servicer
        self._authenticator = authenticator
        self._domain = domain

    async def platform(self, request: Request) -> None:
        await _answer(request, self._servicer.public_card(), f"public, max-age={PUBLIC_MAX_AGE_S}")

    async def agent(self, request: Request, agent_id: str) -> None:
        try:
            headers = {"authorization": request.header("authorization")}
            await connect.authenticate(self._authenticator, headers, public=False)
            card = await self._servicer.agent_card(agent_id, HttpCallContext(request))
        except Exception as exc:
            error = connect.connect_error(exc, self._domain)
            status = connect.http_status(error)
            extra = [(b"www-authenticate", b'Bearer realm="nexus"')] if status == 401 else []
            await request.answer(status, b"application/json", connect.error_body(error), extra)
            return
        await _answer(request, card, f"private, max-age={AGENT_MAX_AGE_S}")


async def _answer(request: Request, card: a2a.AgentCard, cache_control: str) -> None:
    body = json_bytes(json_format.MessageToDict(card))
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'.encode()
    headers = [(b"etag", etag), (b"cache-control", cache_control.encode()), (b"vary", b"authorization")]
    if request.header("if-none-match") == etag.decode():
        await request.start(304, headers)
        await request.body(b"")
        return
    await request.answer(200, b"application/json", body, headers)
