"""A task's plan as the worker sees it, and which step runs next. Pure.

Steps run one at a time in dependency order: a step interrupted by a crash (still `running`)
first, then the first `pending` step (in display order) whose dependencies are all done or
skipped. A `failed` step means the task failed (or was about to: a crash between marking the step
and failing the task); its stored error fails the task again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nexus.kit.validation import JSON, struct_to_dict
from nexus.runtime.v1 import workspace_pb2

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
SETTLED = frozenset({DONE, SKIPPED})

_STATUS = {
    workspace_pb2.PLAN_STEP_STATUS_UNSPECIFIED: PENDING,
    workspace_pb2.PLAN_STEP_STATUS_PENDING: PENDING,
    workspace_pb2.PLAN_STEP_STATUS_RUNNING: RUNNING,
    workspace_pb2.PLAN_STEP_STATUS_DONE: DONE,
    workspace_pb2.PLAN_STEP_STATUS_FAILED: FAILED,
    workspace_pb2.PLAN_STEP_STATUS_SKIPPED: SKIPPED,
}
STATUS_VALUES = {name: value for value, name in _STATUS.items() if value}


@dataclass(frozen=True)
class Step:
    id: str
    action: str
    args: dict[str, JSON] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    status: str = PENDING
    output: dict[str, JSON] = field(default_factory=dict)


def from_proto(plan: workspace_pb2.TaskPlan) -> list[Step]:
    return [
        Step(
            id=s.step_id,
            action=s.action,
            args=struct_to_dict(s.args),
            depends_on=tuple(s.depends_on),
            status=_STATUS.get(s.status, PENDING),
            output=struct_to_dict(s.output),
        )
        for s in plan.steps
    ]


def next_step(steps: Sequence[Step]) -> Step | None:
    """The step to run now: an interrupted (running) one, else the first runnable pending one."""
    running = next((s for s in steps if s.status == RUNNING), None)
    if running is not None:
        return running
    status = {s.id: s.status for s in steps}
    return next(
        (s for s in steps if s.status == PENDING and all(status.get(d) in SETTLED for d in s.depends_on)),
        None,
    )


def failed_step(steps: Sequence[Step]) -> Step | None:
    return next((s for s in steps if s.status == FAILED), None)


def finished(steps: Sequence[Step]) -> bool:
    return all(s.status in SETTLED for s in steps)
