"""The one step type: a skill's step (what to do, after what), and the same step as a task's plan
runs it (with a title, a status and an output). Skills store the first, plans the second; the
gateway turns plans back into skills and workers read plans, so all of them share these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nexus.kit.validation import JSON


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


# A step in one of these lets the steps that depend on it run.
SETTLED = frozenset({StepStatus.DONE, StepStatus.SKIPPED})


def _depends_on(data: Mapping[str, Any]) -> tuple[str, ...]:
    depends = data.get("depends_on") or []
    return tuple(str(d) for d in depends) if isinstance(depends, list | tuple) else ()


def _object(value: object) -> dict[str, JSON]:
    return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class SkillStep:
    id: str
    action: str
    args: dict[str, JSON] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JSON]:
        return {"id": self.id, "action": self.action, "args": self.args, "depends_on": list(self.depends_on)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SkillStep:
        return cls(
            id=str(data["id"]), action=str(data["action"]), args=_object(data.get("args")), depends_on=_depends_on(data)
        )


@dataclass(frozen=True, slots=True)
class PlanStep(SkillStep):
    title: str = ""
    status: str = StepStatus.PENDING
    output: dict[str, JSON] = field(default_factory=dict)

    def to_json(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "title": self.title,
            "action": self.action,
            "args": self.args,
            "depends_on": list(self.depends_on),
            "status": str(self.status),
            "output": self.output,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanStep:
        return cls(
            id=str(data["id"]),
            title=str(data.get("title") or ""),
            action=str(data["action"]),
            args=_object(data.get("args")),
            depends_on=_depends_on(data),
            status=str(data.get("status") or StepStatus.PENDING),
            output=_object(data.get("output")),
        )
