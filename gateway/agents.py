"""Agents as a user sees them: the list, one agent's settings page (the agent, its capabilities
and the caller's connections), connecting and disconnecting credentials, command completion."""

from __future__ import annotations

from google.protobuf import empty_pb2

from gateway import convert
from gateway.downstream import Peers, Scope, together
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.ontology.v1 import ontology_pb2
from nexus.user.v1 import user_pb2

# The user service's maximum page: a user has a few connections per agent.
MAX_CONNECTIONS = 1000


async def list_agents(peers: Peers, scope: Scope, page_size: int, page_token: str) -> ontology_pb2.ListAgentsResponse:
    return await peers.ontology.ListAgents(
        ontology_pb2.ListAgentsRequest(page_size=page_size, page_token=page_token),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )


async def agent_settings(peers: Peers, scope: Scope, agent_id: str) -> pb.GetAgentSettingsResponse:
    md, timeout = scope.metadata, scope.timeout
    async with together() as calls:
        agent = calls.start(
            peers.ontology.GetAgent(ontology_pb2.GetAgentRequest(agent_id=agent_id), metadata=md, timeout=timeout)
        )
        connections = calls.start(
            peers.user.ListConnections(
                user_pb2.ListConnectionsRequest(agent_id=agent_id, page_size=MAX_CONNECTIONS),
                metadata=md,
                timeout=timeout,
            )
        )
    return pb.GetAgentSettingsResponse(agent=agent.result(), connections=connections.result().connections)


async def connect(peers: Peers, scope: Scope, new: convert.Connect) -> user_pb2.Connection:
    """Credentials go in; the answer is the connection without them (the user service never
    returns credentials outside its audited reveal)."""
    connection = user_pb2.Connection(agent_id=new.agent_id, provider=new.provider, display_name=new.display_name)
    return await peers.user.CreateConnection(
        user_pb2.CreateConnectionRequest(connection=connection, credentials=new.credentials, request_id=new.request_id),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )


async def disconnect(peers: Peers, scope: Scope, connection_id: str, etag: str) -> empty_pb2.Empty:
    return await peers.user.DeleteConnection(
        user_pb2.DeleteConnectionRequest(connection_id=connection_id, etag=etag),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )


async def verify_connection(peers: Peers, scope: Scope, connection_id: str) -> user_pb2.Connection:
    return await peers.user.VerifyConnection(
        user_pb2.VerifyConnectionRequest(connection_id=connection_id), metadata=scope.metadata, timeout=scope.timeout
    )


async def complete_command(peers: Peers, scope: Scope, prefix: str, page_size: int) -> pb.CompleteCommandResponse:
    page = await peers.ontology.ListCommands(
        ontology_pb2.ListCommandsRequest(prefix=prefix, page_size=page_size),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )
    return pb.CompleteCommandResponse(commands=page.commands)
