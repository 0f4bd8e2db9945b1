"""The worker's calls, bound to one claimed task and its lease (`LeasedTask`). Every failure of a
call becomes one of the three ways a run ends early (worker.errors), decided here once."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

from nexus.contract.steps import PlanStep
from nexus.kit.errors import details_of
from nexus.kit.validation import JSON, dict_to_struct
from nexus.ontology.v1 import ontology_pb2, ontology_pb2_grpc
from nexus.runtime.v1 import (
    artifact_pb2,
    artifact_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    task_pb2,
    workspace_pb2,
    workspace_pb2_grpc,
)
from worker import plan
from worker.errors import LeaseLost, StepFailure, Transient

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

CALL_TIMEOUT_S = 15.0
CHUNK_BYTES = 1 << 20
# The runtime's answers that mean "this worker no longer holds the task".
LOST_REASONS = frozenset({"LEASE_NOT_HELD", "TASK_ENDED", "TASK_NOT_FOUND"})
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})


@dataclass(frozen=True)
class Stubs:
    """The worker's clients, all authenticated with its service token."""

    runtime: runtime_pb2_grpc.RuntimeServiceAsyncStub
    workspace: workspace_pb2_grpc.WorkspaceServiceAsyncStub
    artifacts: artifact_pb2_grpc.ArtifactServiceAsyncStub
    ontology: ontology_pb2_grpc.OntologyServiceAsyncStub
    metadata: Metadata


def classify(what: str, err: grpc.aio.AioRpcError) -> Exception:
    """LeaseLost, Transient or StepFailure for a failed call."""
    info, violations = details_of(err)
    reason = info.reason if info is not None else ""
    code = err.code()
    if reason in LOST_REASONS or (code == grpc.StatusCode.FAILED_PRECONDITION and reason == "ILLEGAL_TRANSITION"):
        return LeaseLost(f"{what}: {reason or code.name}")
    if code in TRANSIENT_CODES:
        return Transient(f"{what}: {code.name}: {err.details() or ''}")
    message = f"{what} was rejected: {err.details() or code.name}"
    details: dict[str, JSON] = {"code": code.name, "reason": reason}
    if violations:
        details["violations"] = [f"{v.field}: {v.description}" for v in violations]
    return StepFailure("STEP_REJECTED", message, details)


async def call(what: str, pending: Awaitable[T]) -> T:
    try:
        return await pending
    except grpc.aio.AioRpcError as err:
        raise classify(what, err) from None


class LeasedTask:
    """One claimed task: its id, lease and inputs, and every call the runner makes on it."""

    def __init__(self, stubs: Stubs, claimed: runtime_pb2.ClaimedTask) -> None:
        self.stubs = stubs
        self.task = claimed.task
        self.task_id = claimed.task.task_id
        self.lease_id = claimed.lease.lease_id
        self._md = stubs.metadata

    # -- plan ---------------------------------------------------------------------------------

    async def get_plan(self) -> workspace_pb2.TaskPlan:
        request = workspace_pb2.GetTaskPlanRequest(task_id=self.task_id)
        return await call(
            "GetTaskPlan", self.stubs.workspace.GetTaskPlan(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )

    async def set_plan(self, steps: Sequence[workspace_pb2.PlanStep], etag: str) -> workspace_pb2.TaskPlan:
        request = workspace_pb2.SetTaskPlanRequest(task_id=self.task_id, steps=steps, lease_id=self.lease_id, etag=etag)
        return await call(
            "SetTaskPlan", self.stubs.workspace.SetTaskPlan(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )

    async def update_step(self, step_id: str, status: str, output: dict[str, JSON] | None = None) -> list[PlanStep]:
        request = workspace_pb2.UpdatePlanStepRequest(
            task_id=self.task_id, step_id=step_id, status=plan.STATUS_VALUES[status], lease_id=self.lease_id
        )
        if output is not None:
            request.output.CopyFrom(dict_to_struct(output))
        updated = await call(
            "UpdatePlanStep", self.stubs.workspace.UpdatePlanStep(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )
        return plan.from_proto(updated)

    # -- context and memory --------------------------------------------------------------------

    async def get_context(self) -> workspace_pb2.TaskContext:
        request = workspace_pb2.GetTaskContextRequest(task_id=self.task_id)
        return await call(
            "GetTaskContext", self.stubs.workspace.GetTaskContext(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )

    async def patch_context(
        self, variables: dict[str, JSON] | None = None, *, add_files: Sequence[str] = (), etag: str = ""
    ) -> workspace_pb2.TaskContext:
        request = workspace_pb2.PatchTaskContextRequest(
            task_id=self.task_id, add_active_files=add_files, lease_id=self.lease_id, etag=etag
        )
        if variables is not None:
            request.variables_patch.CopyFrom(dict_to_struct(variables))
        return await call(
            "PatchTaskContext",
            self.stubs.workspace.PatchTaskContext(request, metadata=self._md, timeout=CALL_TIMEOUT_S),
        )

    async def get_memory(self) -> workspace_pb2.TaskMemory:
        request = workspace_pb2.GetTaskMemoryRequest(task_id=self.task_id)
        return await call(
            "GetTaskMemory", self.stubs.workspace.GetTaskMemory(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )

    async def put_memory(self, summary: str, takeaways: Sequence[str]) -> workspace_pb2.TaskMemory:
        memory = workspace_pb2.TaskMemory(task_id=self.task_id, summary_text=summary, key_takeaways=takeaways)
        request = workspace_pb2.PutTaskMemoryRequest(memory=memory, lease_id=self.lease_id)
        return await call(
            "PutTaskMemory", self.stubs.workspace.PutTaskMemory(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )

    # -- events and the task's state ---------------------------------------------------------------

    async def append(self, *events: task_pb2.TaskEvent) -> list[task_pb2.TaskEvent]:
        request = runtime_pb2.AppendTaskEventsRequest(task_id=self.task_id, events=events, lease_id=self.lease_id)
        reply = await call(
            "AppendTaskEvents", self.stubs.runtime.AppendTaskEvents(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )
        return list(reply.events)

    async def events(self) -> list[task_pb2.TaskEvent]:
        """Every event of the task, in seq order."""
        events: list[task_pb2.TaskEvent] = []
        token = ""
        while True:
            request = runtime_pb2.ListTaskEventsRequest(task_id=self.task_id, page_size=1000, page_token=token)
            reply = await call(
                "ListTaskEvents", self.stubs.runtime.ListTaskEvents(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
            )
            events += reply.events
            token = reply.next_page_token
            if not token:
                return events

    async def request_input(self, question: task_pb2.TaskEvent) -> None:
        request = runtime_pb2.RequestInputRequest(task_id=self.task_id, lease_id=self.lease_id, question=question)
        await call("RequestInput", self.stubs.runtime.RequestInput(request, metadata=self._md, timeout=CALL_TIMEOUT_S))

    async def finish(self, result: dict[str, JSON]) -> task_pb2.Task:
        request = runtime_pb2.FinishTaskRequest(
            task_id=self.task_id, lease_id=self.lease_id, result=dict_to_struct(result)
        )
        return await call(
            "FinishTask", self.stubs.runtime.FinishTask(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        )

    async def fail(self, reason: str, message: str, details: dict[str, JSON]) -> task_pb2.Task:
        error = task_pb2.TaskError(reason=reason, message=message[:4000], details=dict_to_struct(details))
        request = runtime_pb2.FailTaskRequest(task_id=self.task_id, lease_id=self.lease_id, error=error)
        return await call("FailTask", self.stubs.runtime.FailTask(request, metadata=self._md, timeout=CALL_TIMEOUT_S))

    # -- artifacts ------------------------------------------------------------------------------

    async def find_artifact(self, artifact_type: str, display_name: str, data: bytes) -> artifact_pb2.Artifact | None:
        """An artifact of the task with this type, name and bytes (archived or not), if any."""
        digest = hashlib.sha256(data).hexdigest()
        token = ""
        while True:
            request = artifact_pb2.ListArtifactsRequest(
                task_id=self.task_id,
                type=artifact_type,
                archive_filter=runtime_pb2.ARCHIVE_FILTER_ALL,
                page_size=1000,
                page_token=token,
            )
            reply = await call(
                "ListArtifacts", self.stubs.artifacts.ListArtifacts(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
            )
            for artifact in reply.artifacts:
                if (artifact.display_name, artifact.sha256, artifact.size_bytes) == (display_name, digest, len(data)):
                    return artifact
            token = reply.next_page_token
            if not token:
                return None

    async def upload(
        self, *, request_id: str, artifact_type: str, display_name: str, content_type: str, data: bytes
    ) -> artifact_pb2.Artifact:
        header = artifact_pb2.ArtifactHeader(
            artifact=artifact_pb2.Artifact(
                task_id=self.task_id,
                type=artifact_type,
                display_name=display_name,
                content_type=content_type,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            ),
            request_id=request_id,
            lease_id=self.lease_id,
        )

        async def parts() -> AsyncIterator[artifact_pb2.CreateArtifactRequest]:
            yield artifact_pb2.CreateArtifactRequest(header=header)
            for start in range(0, len(data), CHUNK_BYTES):
                yield artifact_pb2.CreateArtifactRequest(chunk=data[start : start + CHUNK_BYTES])

        return await call(
            "CreateArtifact", self.stubs.artifacts.CreateArtifact(parts(), metadata=self._md, timeout=CALL_TIMEOUT_S)
        )

    # -- the ontology ---------------------------------------------------------------------------

    async def get_skill(self, skill_id: str) -> ontology_pb2.Skill:
        request = ontology_pb2.GetSkillRequest(skill_id=skill_id)
        try:
            return await self.stubs.ontology.GetSkill(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise StepFailure(
                    "SKILL_NOT_FOUND",
                    f"the task's skill {skill_id!r} does not exist (or the worker may not read it)",
                    {"skill_id": skill_id},
                ) from None
            raise classify("GetSkill", err) from None

    async def get_agent(self, agent_id: str) -> ontology_pb2.Agent | None:
        """The agent, or None when it cannot be read (a chat reply then names its id)."""
        try:
            return await self.stubs.ontology.GetAgent(
                ontology_pb2.GetAgentRequest(agent_id=agent_id), metadata=self._md, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError:
            return None
