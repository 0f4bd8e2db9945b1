"""References from a task into the ontology's space: its agent, team and origin skill.

Each is checked with the ontology service as the caller (the caller's token is forwarded), so a
user cannot start a task from another user's private skill or team: to them it does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable

from nexus.kit.auth import forwarded_metadata
from nexus.kit.errors import invalid
from nexus.kit.peers import LOOKUP_TIMEOUT_S, check_all, expect_found
from nexus.kit.server import Resources
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from services.runtime.domain.tasks import NewTask


class References:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def check_task(self, task: NewTask) -> None:
        """INVALID_ARGUMENT with one violation per reference that names nothing the caller can use."""
        ontology = ontology_pb2_grpc.OntologyServiceStub(self._resources.channel("ontology"))
        metadata = forwarded_metadata()
        checks: list[Awaitable[object]] = [
            expect_found(
                ontology.GetAgent(
                    ontology_pb2.GetAgentRequest(agent_id=task.agent_id), metadata=metadata, timeout=LOOKUP_TIMEOUT_S
                ),
                field="task.agent_id",
                description="names no agent",
                reason="AGENT_NOT_FOUND",
            )
        ]
        if task.team_id:
            checks.append(
                expect_found(
                    ontology.GetTeam(
                        ontology_pb2.GetTeamRequest(team_id=task.team_id), metadata=metadata, timeout=LOOKUP_TIMEOUT_S
                    ),
                    field="task.team_id",
                    description="names no team you can use",
                    reason="TEAM_NOT_FOUND",
                )
            )
        if task.origin_skill_id:
            checks.append(self._check_skill(ontology, task, metadata))
        await check_all(*checks)

    @staticmethod
    async def _check_skill(
        ontology: ontology_pb2_grpc.OntologyServiceAsyncStub, task: NewTask, metadata: tuple[tuple[str, str], ...]
    ) -> None:
        skill = await expect_found(
            ontology.GetSkill(
                ontology_pb2.GetSkillRequest(skill_id=task.origin_skill_id or ""),
                metadata=metadata,
                timeout=LOOKUP_TIMEOUT_S,
            ),
            field="task.origin_skill_id",
            description="names no skill you can use",
            reason="SKILL_NOT_FOUND",
        )
        if skill.agent_id != task.agent_id:
            raise invalid("task.origin_skill_id", "belongs to another agent", reason="SKILL_OF_ANOTHER_AGENT")
