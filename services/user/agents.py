"""The one place that asks whether an agent exists.

Agents belong to the ontology service (schema `ontology`); no foreign key crosses schemas, so a
connection's `agent_id` is checked over gRPC, as the caller (the caller's token is forwarded).
"""

from __future__ import annotations

from nexus.kit.auth import forwarded_metadata
from nexus.kit.peers import LOOKUP_TIMEOUT_S, expect_found
from nexus.kit.server import Resources
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc


class AgentDirectory:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def ensure_exists(self, agent_id: str, *, field: str = "connection.agent_id") -> None:
        stub = ontology_pb2_grpc.OntologyServiceStub(self._resources.channel("ontology"))
        lookup = stub.GetAgent(
            ontology_pb2.GetAgentRequest(agent_id=agent_id), metadata=forwarded_metadata(), timeout=LOOKUP_TIMEOUT_S
        )
        await expect_found(lookup, field=field, description="names no agent", reason="AGENT_NOT_FOUND")
