"""Plan, context and memory: proto ↔ domain, and request validation (DESIGN §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nexus.contract import stepgraph
from nexus.contract.steps import PlanStep, StepStatus
from nexus.kit import paging
from nexus.kit.errors import InvalidArgument
from nexus.kit.paging import Keyset, PageRequest
from nexus.kit.protos import timestamp
from nexus.kit.validation import JSON, Violations
from nexus.runtime.v1 import workspace_pb2
from services.runtime.convert.shared import Listing, lease
from services.runtime.domain import memory as mem
from services.runtime.domain import plan as plans
from services.runtime.domain.context import MAX_ACTIVE_FILES, Context, ContextPatch
from services.runtime.store.workspace import HitCursor, hit_cursor

STEP_STATUS_NAME = {
    workspace_pb2.PLAN_STEP_STATUS_PENDING: StepStatus.PENDING,
    workspace_pb2.PLAN_STEP_STATUS_RUNNING: StepStatus.RUNNING,
    workspace_pb2.PLAN_STEP_STATUS_DONE: StepStatus.DONE,
    workspace_pb2.PLAN_STEP_STATUS_FAILED: StepStatus.FAILED,
    workspace_pb2.PLAN_STEP_STATUS_SKIPPED: StepStatus.SKIPPED,
}
STEP_STATUS_NUMBER = {name: number for number, name in STEP_STATUS_NAME.items()}
_STEP_STATUS = workspace_pb2.PlanStepStatus.DESCRIPTOR


@dataclass(frozen=True, slots=True)
class PlanWrite:
    """A SetTaskPlan request: the task's whole new plan, and the etag it was read at."""

    task_id: str
    steps: list[PlanStep]
    etag: str


@dataclass(frozen=True, slots=True)
class StepUpdate:
    """An UpdatePlanStep request: one step's new status, and its output when the call sets one."""

    task_id: str
    step_id: str
    status: str
    output: dict[str, JSON] | None
    etag: str


@dataclass(frozen=True, slots=True)
class ContextChange:
    """A PatchTaskContext request: the task and its patch (which carries the etag)."""

    task_id: str
    patch: ContextPatch


@dataclass(frozen=True, slots=True)
class MemoryWrite:
    """A PutTaskMemory request: the task's whole memory, and the etag it was read at."""

    memory: mem.Memory
    etag: str


# -- plan ---------------------------------------------------------------------------------------


def plan_to_proto(plan: plans.Plan) -> workspace_pb2.TaskPlan:
    message = workspace_pb2.TaskPlan(task_id=plan.task_id, current_step_index=plan.current_step_index, etag=plan.etag)
    for step in plan.steps:
        out = message.steps.add(
            step_id=step.id,
            title=step.title,
            action=step.action,
            depends_on=step.depends_on,
            status=STEP_STATUS_NUMBER[StepStatus(step.status)],
        )
        out.args.update(step.args)
        out.output.update(step.output)
    if plan.updated_at is not None:
        message.update_time.CopyFrom(timestamp(plan.updated_at))
    return message


def _step(v: Violations, field: str, message: workspace_pb2.PlanStep) -> PlanStep:
    v.enum(f"{field}.status", message.status, _STEP_STATUS, required=False)
    return PlanStep(
        id=message.step_id,
        title=message.title,
        action=message.action,
        args=v.struct(f"{field}.args", message.args),
        depends_on=tuple(message.depends_on),
        status=STEP_STATUS_NAME.get(message.status, StepStatus.PENDING),
        output=v.struct(f"{field}.output", message.output),
    )


def plan_steps(v: Violations, field: str, messages: Sequence[workspace_pb2.PlanStep]) -> list[PlanStep]:
    """The steps of a plan as domain values; their field checks go to `v`."""
    if len(messages) > stepgraph.MAX_STEPS:
        v.add(field, f"must have at most {stepgraph.MAX_STEPS} steps, got {len(messages)}")
        return []
    return [_step(v, f"{field}[{i}]", s) for i, s in enumerate(messages)]


def require_valid_plan(steps: Sequence[PlanStep], field: str) -> None:
    """The graph rules (unique ids, known dependencies, no cycle), once every field is sound."""
    problems = plans.validate(steps, field)
    if problems:
        first = problems[0]
        raise InvalidArgument(f"{first.field}: {first.description}", reason="INVALID_PLAN", violations=problems)


def plan_write(request: workspace_pb2.SetTaskPlanRequest, *, by_worker: bool) -> PlanWrite:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    lease(v, request.lease_id, by_worker=by_worker)
    etag = v.etag("etag", request.etag)
    steps = plan_steps(v, "steps", request.steps)
    v.raise_if_any()
    require_valid_plan(steps, "steps")
    assert tid is not None
    return PlanWrite(tid, steps, etag)


def step_update(request: workspace_pb2.UpdatePlanStepRequest, *, by_worker: bool) -> StepUpdate:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    lease(v, request.lease_id, by_worker=by_worker)
    etag = v.etag("etag", request.etag)
    step_id = v.text("step_id", request.step_id, max_len=64, required=True)
    v.enum("status", request.status, _STEP_STATUS)
    output = v.struct("output", request.output) if request.HasField("output") else None
    v.raise_if_any()
    assert tid is not None
    return StepUpdate(tid, step_id, STEP_STATUS_NAME[request.status], output, etag)


# -- context ------------------------------------------------------------------------------------


def context_to_proto(context: Context) -> workspace_pb2.TaskContext:
    message = workspace_pb2.TaskContext(task_id=context.task_id, active_files=context.active_files, etag=context.etag)
    message.variables.update(context.variables)
    if context.updated_at is not None:
        message.update_time.CopyFrom(timestamp(context.updated_at))
    return message


def _ids(v: Violations, field: str, values: Any) -> tuple[str, ...]:
    if len(values) > MAX_ACTIVE_FILES:
        v.add(field, f"must name at most {MAX_ACTIVE_FILES} artifacts")
        return ()
    ids = [v.uuid(f"{field}[{i}]", value) for i, value in enumerate(values)]
    return tuple(dict.fromkeys(i for i in ids if i is not None))


def context_change(request: workspace_pb2.PatchTaskContextRequest, *, by_worker: bool) -> ContextChange:
    v = Violations()
    tid = v.uuid("task_id", request.task_id)
    lease(v, request.lease_id, by_worker=by_worker)
    etag = v.etag("etag", request.etag)
    variables = v.struct("variables_patch", request.variables_patch) if request.HasField("variables_patch") else None
    add = _ids(v, "add_active_files", request.add_active_files)
    remove = _ids(v, "remove_active_files", request.remove_active_files)
    if set(add) & set(remove):
        v.add("remove_active_files", "names an artifact that add_active_files names too")
    v.raise_if_any()
    assert tid is not None
    return ContextChange(tid, ContextPatch(variables=variables, add_files=add, remove_files=remove, etag=etag))


# -- memory -------------------------------------------------------------------------------------


def memory_to_proto(memory: mem.Memory) -> workspace_pb2.TaskMemory:
    message = workspace_pb2.TaskMemory(
        task_id=memory.task_id,
        summary_text=memory.summary_text,
        key_takeaways=memory.key_takeaways,
        vector_doc_id=memory.vector_doc_id or "",
        etag=memory.etag,
    )
    if memory.updated_at is not None:
        message.update_time.CopyFrom(timestamp(memory.updated_at))
    return message


def memory_write(request: workspace_pb2.PutTaskMemoryRequest, *, by_worker: bool) -> MemoryWrite:
    v = Violations()
    m = request.memory
    tid = v.uuid("memory.task_id", m.task_id)
    lease(v, request.lease_id, by_worker=by_worker)
    etag = v.etag("memory.etag", m.etag)
    summary = v.text("memory.summary_text", m.summary_text, max_len=mem.MAX_SUMMARY_CHARS)
    if len(m.key_takeaways) > mem.MAX_TAKEAWAYS:
        v.add("memory.key_takeaways", f"must hold at most {mem.MAX_TAKEAWAYS} takeaways")
    else:
        for i, takeaway in enumerate(m.key_takeaways):
            v.text(f"memory.key_takeaways[{i}]", takeaway, max_len=mem.MAX_TAKEAWAY_CHARS)
    doc_id = v.text("memory.vector_doc_id", m.vector_doc_id, max_len=mem.MAX_VECTOR_DOC_ID_CHARS)
    v.raise_if_any()
    assert tid is not None
    return MemoryWrite(mem.Memory(tid, summary, tuple(m.key_takeaways), doc_id or None, 0), etag)


def _scores(cursor: HitCursor) -> bool:
    """Similarities are 0 to 1: a token with others is not one this search gave."""
    return 0 <= cursor.score <= 1 and 0 <= cursor.tiebreak <= 1


def search(request: workspace_pb2.SearchTaskMemoriesRequest, user_id: str) -> Listing[str, HitCursor]:
    """The query (`where`) and the page tokens of a search of the caller's memories."""
    v = Violations()
    query = v.text("query", request.query, max_len=mem.MAX_QUERY_CHARS, required=True)
    if request.page_size < 0:
        v.add("page_size", "must not be negative")
    v.raise_if_any()
    return Listing(query, Keyset(HitCursor, "memories", user_id, query, check=_scores))


def search_page(
    listing: Listing[str, HitCursor], request: PageRequest, budget: paging.Budget
) -> paging.Page[mem.Hit, workspace_pb2.MemorySearchResult, HitCursor]:
    """A page of results: searches have page sizes of their own."""
    return listing.keyset.page(
        request,
        budget,
        search_result,
        cursor_of=hit_cursor,
        default=mem.DEFAULT_PAGE_SIZE,
        maximum=mem.MAX_PAGE_SIZE,
    )


def search_result(hit: mem.Hit) -> workspace_pb2.MemorySearchResult:
    return workspace_pb2.MemorySearchResult(
        memory=memory_to_proto(hit.memory),
        score=hit.score,
        task_title=hit.task_title,
        task_is_archived=hit.task_is_archived,
    )
