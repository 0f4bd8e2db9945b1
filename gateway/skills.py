"""CrystallizeSkill: a finished task becomes a private skill of its owner, and optionally a
private command that starts it (the rules of what the skill holds: `domain/crystallize.py`)."""

from __future__ import annotations

import contextlib
import uuid

import grpc

from gateway import convert
from gateway.domain import crystallize
from gateway.downstream import Peers, Scope, together
from nexus.contract.steps import SkillStep
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit.errors import AlreadyExists, FailedPrecondition, FieldViolation
from nexus.kit.validation import struct_to_dict
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.runtime.v1 import runtime_pb2, task_pb2, workspace_pb2


def _derived(request_id: str, part: str) -> str:
    """The downstream request id of one part of a request: a retry sends the same ones."""
    return str(uuid.uuid5(uuid.UUID(request_id), part)) if request_id else ""


async def _origin_inputs(peers: Peers, scope: Scope, skill_id: str) -> list[onto.InputField] | None:
    """The origin skill's inputs, or None when the task had none or the caller cannot see it
    (any more)."""
    if not skill_id:
        return None
    try:
        skill = await peers.ontology.GetSkill(
            onto.GetSkillRequest(skill_id=skill_id), metadata=scope.metadata, timeout=scope.timeout
        )
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return list(skill.definition.inputs)


async def _require_free_trigger(peers: Peers, scope: Scope, trigger: str) -> None:
    """ALREADY_EXISTS when the caller already runs something with this trigger, before any skill
    is created (CreateCommand would refuse it after)."""
    if not trigger:
        return
    try:
        await peers.ontology.GetCommand(
            onto.GetCommandRequest(trigger=trigger), metadata=scope.metadata, timeout=scope.timeout
        )
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            return
        raise
    raise AlreadyExists(
        "you already have a command with this trigger",
        reason="TRIGGER_TAKEN",
        violations=[FieldViolation("trigger", "is already a command of yours or of the system")],
    )


def _planned(plan: workspace_pb2.TaskPlan) -> list[SkillStep]:
    return [SkillStep(s.step_id, s.action, struct_to_dict(s.args), tuple(s.depends_on)) for s in plan.steps]


async def crystallize_skill(peers: Peers, scope: Scope, request: convert.Crystallize) -> pb.CrystallizeSkillResponse:
    md, timeout = scope.metadata, scope.timeout
    async with together() as calls:
        got_task = calls.start(
            peers.runtime.GetTask(runtime_pb2.GetTaskRequest(task_id=request.task_id), metadata=md, timeout=timeout)
        )
        got_plan = calls.start(
            peers.workspace.GetTaskPlan(
                workspace_pb2.GetTaskPlanRequest(task_id=request.task_id), metadata=md, timeout=timeout
            )
        )
    task, plan = got_task.result(), got_plan.result()
    if task.status != task_pb2.TASK_STATUS_FINISHED:
        raise FailedPrecondition("only a finished task can become a skill", reason="TASK_NOT_FINISHED")
    if not plan.steps:
        raise FailedPrecondition("the task has no plan steps to repeat", reason="TASK_HAS_NO_PLAN")
    async with together() as calls:
        origin = calls.start(_origin_inputs(peers, scope, task.origin_skill_id))
        calls.start(_require_free_trigger(peers, scope, request.trigger))

    description = crystallize.description(request.description, task.title)
    definition = onto.SkillDefinition(
        inputs=crystallize.skill_inputs(origin.result(), struct_to_dict(task.inputs)),
        steps=crystallize.skill_steps(_planned(plan)),
    )
    skill = await peers.ontology.CreateSkill(
        onto.CreateSkillRequest(
            skill=onto.Skill(agent_id=task.agent_id, name=request.name, description=description, definition=definition),
            request_id=_derived(request.request_id, "skill"),
        ),
        metadata=md,
        timeout=scope.timeout,
    )
    if not request.trigger:
        return pb.CrystallizeSkillResponse(skill=skill)
    command = onto.Command(
        trigger=request.trigger,
        agent_id=task.agent_id,
        target_skill_id=skill.id,
        description=description[: crystallize.MAX_COMMAND_DESCRIPTION],
    )
    try:
        created = await peers.ontology.CreateCommand(
            onto.CreateCommandRequest(command=command, request_id=_derived(request.request_id, "command")),
            metadata=md,
            timeout=scope.timeout,
        )
    except grpc.aio.AioRpcError:
        # The trigger was taken meanwhile: no half result (a skill without its command).
        with contextlib.suppress(grpc.aio.AioRpcError):
            await peers.ontology.DeleteSkill(
                onto.DeleteSkillRequest(skill_id=skill.id), metadata=md, timeout=scope.timeout
            )
        raise
    return pb.CrystallizeSkillResponse(skill=skill, command=created)
