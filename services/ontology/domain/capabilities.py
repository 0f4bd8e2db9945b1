"""Which of an agent's skills and commands make its capabilities snapshot.

Everyone reads agents, so the snapshot holds only what everyone may see: system skills, public
user skills, and system commands. Private user skills and every user command stay out; a user
sees their own through ListSkills and ListCommands.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.ontology.domain.models import Command, Skill
from services.ontology.domain.snapshot import CommandCapability, SkillCapability, Snapshot


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
