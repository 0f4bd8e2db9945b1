"""The gateway (`nexus.gateway.v1`): the one service client apps call. It composes the User,
Ontology and Runtime services as the caller and keeps no state (no database).

One servicer, two front doors: the gRPC port, and the HTTP port (`gateway/http/`: Connect,
Server-Sent Events, artifact downloads, the web console), which calls the same servicer."""

from __future__ import annotations

import grpc

from gateway.accounts import EdgeLimits
from gateway.downstream import Peers
from gateway.http import FrontDoor
from gateway.servicer import GatewayServicer
from gateway.tickets import TicketSealer
from nexus.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from nexus.kit.http import Authenticator, HttpFrontDoor
from nexus.kit.server import Resources, ServiceDefinition

DOMAIN = "nexus.gateway.v1"
SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
# Methods a client calls before it has a token.
PUBLIC_METHODS = tuple(f"/{SERVICE_NAME}/{name}" for name in ("SignUp", "SignIn", "Refresh", "SignOut"))


async def build(resources: Resources) -> ServiceDefinition:
    settings = resources.settings
    tickets = TicketSealer.from_settings(settings)
    servicer = GatewayServicer(Peers.connect(resources), EdgeLimits(settings), settings.max_message_bytes, tickets)

    def register(server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)

    def http(authenticator: Authenticator) -> HttpFrontDoor:
        door = FrontDoor(
            servicer, authenticator, tickets, resources.settings, public_methods=PUBLIC_METHODS, domain=DOMAIN
        )
        return door.front_door()

    return ServiceDefinition(
        name="gateway",
        domain=DOMAIN,
        register=register,
        service_names=[SERVICE_NAME],
        public_methods=PUBLIC_METHODS,
        http=http,
    )
