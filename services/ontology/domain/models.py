"""The ontology's resources as plain values, between the proto layer and the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from nexus.kit.validation import JSON
from services.ontology.domain.definition import SkillDefinition
from services.ontology.domain.snapshot import Snapshot

T = TypeVar("T")


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    description: str = ""
    avatar_url: str = ""
    role_prompt: str = ""
    snapshot: Snapshot | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0


@dataclass(frozen=True)
class Skill:
    id: str
    agent_id: str
    name: str
    description: str = ""
    definition: SkillDefinition = field(default_factory=SkillDefinition)
    # None: a system skill.
    created_by_user_id: str | None = None
    is_public: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0

    @property
    def is_system(self) -> bool:
        return self.created_by_user_id is None


@dataclass(frozen=True)
class Command:
    trigger: str
    agent_id: str
    target_skill_id: str
    description: str = ""
    # None: a system command.
    owner_user_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0

    @property
    def is_system(self) -> bool:
        return self.owner_user_id is None


class TeamStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"


@dataclass(frozen=True)
class Participant:
    agent_id: str
    role: str = ""
    config: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    description: str = ""
    participants: tuple[Participant, ...] = ()
    status: TeamStatus = TeamStatus.ACTIVE
    config: dict[str, JSON] = field(default_factory=dict)
    # None: a system team.
    owner_user_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0


def apply_mask(current: T, patch: T, paths: Iterable[str]) -> T:
    """`current` with the fields named in `paths` taken from `patch` (AIP-134 semantics)."""
    changes: dict[str, Any] = {path: getattr(patch, path) for path in paths}
    return dataclasses.replace(current, **changes)  # type: ignore[type-var]


class Ownership(StrEnum):
    """List filters beyond visibility."""

    ANY = "any"
    SYSTEM = "system"
    MINE = "mine"
    PUBLIC = "public"
