"""The one place that asks whether an agent exists.

Agents belong to the ontology service (schema `ontology`); no foreign key crosses schemas, so a
connection's `agent_id` is checked over gRPC, as the caller (the caller's token is forwarded).
"""

from __future__ import annotations

import grpc

from nexus.kit.auth import forwarded_metadata
from nexus.kit.errors import invalid
from nexus.kit.server import Resources
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc

LOOKUP_TIMEOUT_S = 5.0


class AgentDirectory:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def ensure_exists(self, agent_id: str, *, field: str = "connection.agent_id") -> None:
        """INVALID_ARGUMENT naming `field` when no agent has this id; other failures of the
        ontology service (UNAVAILABLE, …) pass through unchanged."""
        stub = ontology_pb2_grpc.OntologyServiceStub(self._resources.channel("ontology"))
        try:
            await stub.GetAgent(
                ontology_pb2.GetAgentRequest(agent_id=agent_id), metadata=forwarded_metadata(), timeout=LOOKUP_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise invalid(field, "names no agent", reason="AGENT_NOT_FOUND") from None
            raise
