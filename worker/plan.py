"""A task's plan as the worker sees it, and which step runs next. Pure.

Steps run one at a time in dependency order: a step interrupted by a crash (still `running`)
first, then the first `pending` step (in display order) whose dependencies are all done or
skipped. A `failed` step means the task failed (or was about to: a crash between marking the step
and failing the task); its stored error fails the task again.
"""

from __future__ import annotations

from collections.abc import Sequence

from nexus.contract.steps import SETTLED, PlanStep, StepStatus
from nexus.kit.validation import struct_to_dict
from nexus.runtime.v1 import workspace_pb2

_STATUS = {
    workspace_pb2.PLAN_STEP_STATUS_UNSPECIFIED: StepStatus.PENDING,
    workspace_pb2.PLAN_STEP_STATUS_PENDING: StepStatus.PENDING,
    workspace_pb2.PLAN_STEP_STATUS_RUNNING: StepStatus.RUNNING,
    workspace_pb2.PLAN_STEP_STATUS_DONE: StepStatus.DONE,
    workspace_pb2.PLAN_STEP_STATUS_FAILED: StepStatus.FAILED,
    workspace_pb2.PLAN_STEP_STATUS_SKIPPED: StepStatus.SKIPPED,
}
STATUS_VALUES: dict[str, workspace_pb2.PlanStepStatus.ValueType] = {
    name: value for value, name in _STATUS.items() if value
}


def from_proto(plan: workspace_pb2.TaskPlan) -> list[PlanStep]:
    return [
        PlanStep(
            id=s.step_id,
            title=s.title,
            action=s.action,
            args=struct_to_dict(s.args),
            depends_on=tuple(s.depends_on),
            status=_STATUS.get(s.status, StepStatus.PENDING),
            output=struct_to_dict(s.output),
        )
        for s in plan.steps
    ]


def next_step(steps: Sequence[PlanStep]) -> PlanStep | None:
    """The step to run now: an interrupted (running) one, else the first runnable pending one."""
    running = next((s for s in steps if s.status == StepStatus.RUNNING), None)
    if running is not None:
        return running
    status = {s.id: s.status for s in steps}
    return next(
        (s for s in steps if s.status == StepStatus.PENDING and all(status.get(d) in SETTLED for d in s.depends_on)),
        None,
    )


def failed_step(steps: Sequence[PlanStep]) -> PlanStep | None:
    return next((s for s in steps if s.status == StepStatus.FAILED), None)


def finished(steps: Sequence[PlanStep]) -> bool:
    return all(s.status in SETTLED for s in steps)
