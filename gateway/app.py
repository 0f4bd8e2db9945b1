"""The gateway (`nexus.gateway.v1`): the one service client apps call. It composes the User,
Ontology and Runtime services as the caller and keeps no state (no database).

One servicer, two front doors: the gRPC port, and the HTTP port (`gateway/http/`: Connect,
Server-Sent Events, artifact downloads, the web console), which calls the same servicer. The A2A
adapter (`lf.a2a.v1.A2AService`) is served the same way: gRPC on the gRPC port, JSON-RPC and the
agent cards on the HTTP port."""

from __future__ import annotations

from importlib import metadata

import grpc
from a2a.types import a2a_pb2, a2a_pb2_grpc

from gateway.a2a_servicer import A2AServicer
from gateway.accounts import EdgeLimits
from gateway.domain.a2a_protocol import Endpoints
from gateway.downstream import Peers
from gateway.http import FrontDoor
from gateway.servicer import GatewayServicer
from gateway.tickets import TicketSealer
from nexus.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from nexus.kit.config import Settings
from nexus.kit.http import Authenticator, HttpFrontDoor
from nexus.kit.server import Resources, ServiceDefinition

DOMAIN = "nexus.gateway.v1"
SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
A2A_SERVICE_NAME = a2a_pb2.DESCRIPTOR.services_by_name["A2AService"].full_name
# Methods a client calls before it has a token.
PUBLIC_METHODS = tuple(f"/{SERVICE_NAME}/{name}" for name in ("SignUp", "SignIn", "Refresh", "SignOut"))


def a2a_endpoints(settings: Settings) -> Endpoints:
    return Endpoints.of(
        host=settings.host,
        http_port=settings.http_port("gateway"),
        grpc_port=settings.port("gateway"),
        tls=bool(settings.tls_cert_file and settings.tls_key_file),
        http_base=settings.a2a_public_url,
        grpc_address=settings.a2a_grpc_address,
    )


async def build(resources: Resources) -> ServiceDefinition:
    settings = resources.settings
    tickets = TicketSealer.from_settings(settings)
    peers = Peers.connect(resources)
    servicer = GatewayServicer(peers, EdgeLimits(settings), settings.max_message_bytes, tickets)
    a2a = A2AServicer(
        peers,
        a2a_endpoints(settings),
        metadata.version("nexus"),
        settings.max_message_bytes,
        default_agent=settings.a2a_default_agent,
    )

    def register(server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
        a2a_pb2_grpc.add_A2AServiceServicer_to_server(a2a, server)  # type: ignore[no-untyped-call]

    def http(authenticator: Authenticator) -> HttpFrontDoor:
        door = FrontDoor(
            servicer, a2a, authenticator, tickets, resources.settings, public_methods=PUBLIC_METHODS, domain=DOMAIN
        )
        return door.front_door()

    return ServiceDefinition(
        name="gateway",
        domain=DOMAIN,
        register=register,
        service_names=[SERVICE_NAME, A2A_SERVICE_NAME],
        public_methods=PUBLIC_METHODS,
        http=http,
    )
