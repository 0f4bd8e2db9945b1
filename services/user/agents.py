"""The one place that asks whether an agent exists.

Agents belong to the ontology service (schema `ontology`); no foreign key crosses schemas, so a
connection's `agent_id` is checked over gRPC. Until that service's API is merged, only the id's
format is checked (in convert.py, with `Violations.slug`).
"""

from __future__ import annotations

from nexus.kit.server import Resources


class AgentDirectory:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def ensure_exists(self, agent_id: str) -> None:
        """Raise FailedPrecondition(reason="AGENT_NOT_FOUND") when the agent does not exist.

        TODO(lead): call nexus.ontology.v1 GetAgent on `self._resources.channel("ontology")`,
        forwarding the caller's token, and map NOT_FOUND to FailedPrecondition.
        """
        return None
