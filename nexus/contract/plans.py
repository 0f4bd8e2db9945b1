"""A skill's steps as a task's first plan: what the gateway's RunCommand seeds, and what the
worker seeds for a task that reaches it without one (a cron task)."""

from __future__ import annotations

from collections.abc import Sequence

from nexus.contract.stepgraph import MAX_STEP_TITLE
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import workspace_pb2


def step_title(step_id: str) -> str:
    """Skill steps have no title; people read the id: `open_preview` → `Open preview`."""
    words = step_id.replace("_", " ").replace("-", " ").split()
    return " ".join(words).capitalize()[:MAX_STEP_TITLE] or step_id


def first_plan(steps: Sequence[ontology_pb2.Step]) -> list[workspace_pb2.PlanStep]:
    """Every step pending, with its action, args and dependencies as the skill defines them."""
    return [
        workspace_pb2.PlanStep(
            step_id=step.id,
            title=step_title(step.id),
            action=step.action,
            args=step.args,
            depends_on=step.depends_on,
            status=workspace_pb2.PLAN_STEP_STATUS_PENDING,
        )
        for step in steps
    ]
