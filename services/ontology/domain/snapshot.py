"""An agent's capabilities snapshot: what everyone can use the agent for.

The snapshot's shape and stored form; which skills and commands go into it is
`capabilities.py`'s rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from nexus.kit.validation import JSON
from services.ontology.domain.definition import InputField


@dataclass(frozen=True)
class SkillCapability:
    id: str
    name: str
    description: str
    inputs: tuple[InputField, ...]


@dataclass(frozen=True)
class CommandCapability:
    trigger: str
    skill_id: str
    description: str


@dataclass(frozen=True)
class Snapshot:
    skills: tuple[SkillCapability, ...] = ()
    commands: tuple[CommandCapability, ...] = ()
    compute_time: datetime | None = None

    def to_json(self) -> dict[str, JSON]:
        """The stored form (the compute time is a column of its own)."""
        return {
            "skills": [
                {
                    "id": s.id,
                    "name": s.name,
                    "description": s.description,
                    "inputs": [i.to_json() for i in s.inputs],
                }
                for s in self.skills
            ],
            "commands": [
                {"trigger": c.trigger, "skill_id": c.skill_id, "description": c.description} for c in self.commands
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSON], compute_time: datetime | None) -> Snapshot:
        skills = data.get("skills") or []
        commands = data.get("commands") or []
        return cls(
            skills=tuple(
                SkillCapability(
                    id=str(s["id"]),
                    name=str(s.get("name", "")),
                    description=str(s.get("description", "")),
                    inputs=tuple(InputField.from_json(i) for i in (s.get("inputs") or []) if isinstance(i, dict)),  # type: ignore[union-attr]
                )
                for s in skills  # type: ignore[union-attr]
                if isinstance(s, dict)
            ),
            commands=tuple(
                CommandCapability(
                    trigger=str(c["trigger"]),
                    skill_id=str(c.get("skill_id", "")),
                    description=str(c.get("description", "")),
                )
                for c in commands  # type: ignore[union-attr]
                if isinstance(c, dict)
            ),
            compute_time=compute_time,
        )
