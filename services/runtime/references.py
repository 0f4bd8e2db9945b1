"""References from a task (or a schedule's command) into the ontology's space: its agent, team
and skill; and a task's session, which lives in this service.

Ontology references are checked with the ontology service as the caller (the caller's token is
forwarded), so a user cannot start a task from another user's private skill or team: to them it
does not exist. Every bad reference is reported at once.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from nexus.kit.auth import forwarded_metadata
from nexus.kit.errors import FieldViolation, InvalidArgument, invalid
from nexus.kit.peers import LOOKUP_TIMEOUT_S, check_all, expect_found
from nexus.kit.server import Resources
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from services.runtime.domain.schedules import Command, InputSpec, input_problems
from services.runtime.domain.tasks import NewTask


class Sessions(Protocol):
    async def exists(self, user_id: str, session_id: str) -> bool: ...


class References:
    def __init__(self, resources: Resources, sessions: Sessions | None = None) -> None:
        self._resources = resources
        self._sessions = sessions

    async def check_task(self, task: NewTask) -> None:
        """INVALID_ARGUMENT with one violation per reference that names nothing the caller can use.
        (The store checks the session again under a lock, against a concurrent delete.)"""
        extra: list[Awaitable[object]] = []
        if task.session_id and self._sessions is not None:
            extra.append(self._check_session(self._sessions, task.user_id, task.session_id))
        await self._check(task.agent_id, task.team_id, task.origin_skill_id, "task", "origin_skill_id", extra)

    async def check_command(self, command: Command) -> None:
        """A schedule's pre-resolved command, checked as a task's references are; its typed
        inputs are checked against the skill's declared inputs too."""
        await self._check(
            command.agent_id,
            command.team_id,
            command.skill_id,
            "schedule.command",
            "skill_id",
            [],
            inputs=command.inputs,
        )

    @staticmethod
    async def _check_session(sessions: Sessions, user_id: str, session_id: str) -> None:
        if not await sessions.exists(user_id, session_id):
            raise invalid("task.session_id", "names no session of yours", reason="SESSION_NOT_FOUND")

    async def _check(
        self,
        agent_id: str,
        team_id: str | None,
        skill_id: str | None,
        prefix: str,
        skill_field: str,
        extra: list[Awaitable[object]],
        *,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        ontology = ontology_pb2_grpc.OntologyServiceStub(self._resources.channel("ontology"))
        metadata = forwarded_metadata()
        checks: list[Awaitable[object]] = [
            expect_found(
                ontology.GetAgent(
                    ontology_pb2.GetAgentRequest(agent_id=agent_id), metadata=metadata, timeout=LOOKUP_TIMEOUT_S
                ),
                field=f"{prefix}.agent_id",
                description="names no agent",
                reason="AGENT_NOT_FOUND",
            ),
            *extra,
        ]
        if team_id:
            checks.append(
                expect_found(
                    ontology.GetTeam(
                        ontology_pb2.GetTeamRequest(team_id=team_id), metadata=metadata, timeout=LOOKUP_TIMEOUT_S
                    ),
                    field=f"{prefix}.team_id",
                    description="names no team you can use",
                    reason="TEAM_NOT_FOUND",
                )
            )
        if skill_id:
            field = f"{prefix}.{skill_field}"
            checks.append(self._check_skill(ontology, agent_id, skill_id, field, metadata, inputs, f"{prefix}.inputs"))
        await check_all(*checks)

    @staticmethod
    async def _check_skill(
        ontology: ontology_pb2_grpc.OntologyServiceAsyncStub,
        agent_id: str,
        skill_id: str,
        field: str,
        metadata: tuple[tuple[str, str], ...],
        inputs: dict[str, Any] | None,
        inputs_field: str,
    ) -> None:
        skill = await expect_found(
            ontology.GetSkill(
                ontology_pb2.GetSkillRequest(skill_id=skill_id), metadata=metadata, timeout=LOOKUP_TIMEOUT_S
            ),
            field=field,
            description="names no skill you can use",
            reason="SKILL_NOT_FOUND",
        )
        if skill.agent_id != agent_id:
            raise invalid(field, "belongs to another agent", reason="SKILL_OF_ANOTHER_AGENT")
        if inputs is None:
            return
        specs = [
            InputSpec(
                name=i.name,
                type=_INPUT_TYPES.get(i.type, "json"),
                required=i.required,
                has_default=i.HasField("default_value"),
                allowed_values=tuple(i.allowed_values),
            )
            for i in skill.definition.inputs
        ]
        problems = [FieldViolation(f"{inputs_field}.{name}", p) for name, p in input_problems(specs, inputs)]
        if problems:
            first = problems[0]
            raise InvalidArgument(
                f"{first.field}: {first.description}", reason="INPUTS_DO_NOT_FIT_SKILL", violations=problems
            )


_INPUT_TYPES = {
    ontology_pb2.INPUT_TYPE_STRING: "string",
    ontology_pb2.INPUT_TYPE_INTEGER: "integer",
    ontology_pb2.INPUT_TYPE_NUMBER: "number",
    ontology_pb2.INPUT_TYPE_BOOLEAN: "boolean",
    ontology_pb2.INPUT_TYPE_URL: "url",
    ontology_pb2.INPUT_TYPE_ENUM: "enum",
    ontology_pb2.INPUT_TYPE_JSON: "json",
}
