"""An agent's capabilities snapshot: what everyone can use the agent for.

Everyone reads agents, so the snapshot holds only what everyone may see: system skills, public
user skills, and system commands. Private user skills and every user command stay out; a user
sees their own through ListSkills and ListCommands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from nexus.kit.validation import JSON
from services.ontology.domain.definition import InputField

if TYPE_CHECKING:
    from services.ontology.domain.models import Command, Skill


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


def skill_in_snapshot(skill: Skill) -> bool:
    return skill.created_by_user_id is None or skill.is_public


def command_in_snapshot(command: Command) -> bool:
    return command.owner_user_id is None


def build(skills: Iterable[Skill], commands: Iterable[Command]) -> Snapshot:
    """The snapshot of one agent's skills and commands (any others are left out)."""
    return Snapshot(
        skills=tuple(
            SkillCapability(s.id, s.name, s.description, s.definition.inputs)
            for s in sorted(skills, key=lambda s: s.id)
            if skill_in_snapshot(s)
        ),
        commands=tuple(
            CommandCapability(c.trigger, c.target_skill_id, c.description)
            for c in sorted(commands, key=lambda c: c.trigger)
            if command_in_snapshot(c)
        ),
    )
