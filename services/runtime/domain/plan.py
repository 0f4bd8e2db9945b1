"""A task's plan: a step graph with statuses (DESIGN §3: the future). Pure rules, no I/O.

Validation is that of a skill's step graph: unique ids, dependencies that name steps, no
cycles (the error names the cycle). On top, a step may be running or done only when every step
it depends on is done or skipped. `current_step_index` is derived, never written by callers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from nexus.contract import stepgraph
from nexus.contract.stepgraph import MAX_STEP_TITLE, MAX_STEPS, check_text
from nexus.contract.steps import SETTLED, PlanStep, StepStatus
from nexus.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from nexus.kit.protos import etag
from nexus.kit.validation import JSON, MAX_JSON_BYTES
from services.runtime.domain.events import NewEvent, Role, Type

# The whole plan as JSON; each step's args and output are also checked as JSON on the way in.
MAX_PLAN_BYTES = MAX_JSON_BYTES
STEP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
STEP_ID_HINT = "must be 1-64 characters of A-Z, a-z, 0-9, '_', '-', '.' or ':', starting with a letter or digit"
STEP_RULES = stepgraph.Rules(id_field="step_id", id_pattern=STEP_ID, id_hint=STEP_ID_HINT, whole="plan")


# A step in one of these states needs its dependencies settled.
NEEDS_DEPENDENCIES = frozenset({StepStatus.RUNNING, StepStatus.DONE})


@dataclass(frozen=True, slots=True)
class Plan:
    task_id: str
    steps: tuple[PlanStep, ...]
    version: int  # 0: never written
    updated_at: Any = None

    @property
    def etag(self) -> str:
        return etag(self.version)

    @property
    def current_step_index(self) -> int:
        return current_step_index(self.steps)


def steps_json(steps: Sequence[PlanStep]) -> list[JSON]:
    return [s.to_json() for s in steps]


def validate(steps: Sequence[PlanStep], prefix: str = "steps") -> list[FieldViolation]:
    """Every problem of a step list, one violation each: the step-graph rules skills follow too,
    step titles, the rule that running and done steps have settled dependencies, and the size."""
    problems = stepgraph.structure_problems(steps, prefix, STEP_RULES)
    if len(steps) > MAX_STEPS:
        return problems
    for index, step in enumerate(steps):
        check_text(problems, f"{prefix}[{index}].title", step.title, MAX_STEP_TITLE)
    if problems:
        return problems
    by_id = {s.id: s for s in steps}
    for index, step in enumerate(steps):
        if step.status in NEEDS_DEPENDENCIES and not _settled(step, by_id):
            problems.append(
                FieldViolation(
                    f"{prefix}[{index}].status", f"a {step.status} step needs its dependencies done or skipped"
                )
            )
    if not problems and plan_bytes(steps) > MAX_PLAN_BYTES:
        problems.append(FieldViolation(prefix, f"the plan is larger than {MAX_PLAN_BYTES} bytes as JSON"))
    return problems


def _settled(step: PlanStep, by_id: dict[str, PlanStep]) -> bool:
    return all(by_id[d].status in SETTLED for d in step.depends_on if d in by_id)


def plan_bytes(steps: Sequence[PlanStep]) -> int:
    return len(json.dumps(steps_json(steps), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def current_step_index(steps: Sequence[PlanStep]) -> int:
    """The first running step; else the first pending step whose dependencies are all done or
    skipped (the next to run); else the first failed step (what blocks the plan); else the
    number of steps (everything is settled; 0 for an empty plan)."""
    by_id = {s.id: s for s in steps}
    for index, step in enumerate(steps):
        if step.status == StepStatus.RUNNING:
            return index
    for index, step in enumerate(steps):
        if step.status == StepStatus.PENDING and _settled(step, by_id):
            return index
    for index, step in enumerate(steps):
        if step.status == StepStatus.FAILED:
            return index
    return len(steps)


def update_step(plan: Plan, step_id: str, status: str, output: dict[str, JSON] | None) -> tuple[PlanStep, PlanStep]:
    """The plan's step `step_id` before and after the change; the rules of `validate` hold after."""
    index = next((i for i, s in enumerate(plan.steps) if s.id == step_id), None)
    if index is None:
        raise NotFound("the plan has no step with this id", reason="PLAN_STEP_NOT_FOUND")
    before = plan.steps[index]
    after = replace(before, status=status, output=before.output if output is None else output)
    by_id = {s.id: s for s in plan.steps}
    if after.status in NEEDS_DEPENDENCIES and not _settled(after, by_id):
        raise FailedPrecondition(
            f"a {after.status} step needs its dependencies done or skipped", reason="PLAN_STEP_BLOCKED"
        )
    steps = (*plan.steps[:index], after, *plan.steps[index + 1 :])
    if plan_bytes(steps) > MAX_PLAN_BYTES:
        raise InvalidArgument(
            f"output: the plan would be larger than {MAX_PLAN_BYTES} bytes as JSON",
            violations=[FieldViolation("output", f"makes the plan larger than {MAX_PLAN_BYTES} bytes as JSON")],
        )
    return before, after


def replace_step(steps: Sequence[PlanStep], after: PlanStep) -> tuple[PlanStep, ...]:
    return tuple(after if s.id == after.id else s for s in steps)


def set_event(steps: Sequence[PlanStep], version: int) -> NewEvent:
    """The `plan` event of a whole new plan: an outline of every step (no args or outputs, so the
    event stays small; GetTaskPlan has them), the derived index and the plan's version."""
    return NewEvent(
        role=Role.SYSTEM,
        type=Type.PLAN,
        content_text=f"plan set: {len(steps)} steps",
        render_payload=None,
        metadata={
            "change": "set",
            "version": version,
            "current_step_index": current_step_index(steps),
            "steps": [
                {
                    "id": s.id,
                    "title": s.title,
                    "action": s.action,
                    "status": str(s.status),
                    "depends_on": list(s.depends_on),
                }
                for s in steps
            ],
        },
    )


def step_event(steps: Sequence[PlanStep], before: PlanStep, after: PlanStep, version: int) -> NewEvent:
    """The `plan` event of one step's change."""
    return NewEvent(
        role=Role.SYSTEM,
        type=Type.PLAN,
        content_text=f"step {after.id}: {after.status}",
        render_payload=None,
        metadata={
            "change": "step",
            "version": version,
            "current_step_index": current_step_index(steps),
            "step_id": after.id,
            "status": str(after.status),
            "previous_status": str(before.status),
        },
    )
