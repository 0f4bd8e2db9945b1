"""Event rules (DESIGN §3): roles, types, who may append what, render payloads, batch limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from nexus.kit.validation import JSON

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_CONTENT_CHARS = 1024 * 1024
MAX_CLIENT_KEY_CHARS = 128


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class Type(StrEnum):
    MESSAGE = "message"
    NEXUS_RENDER = "nexus_render"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    STATUS = "status"
    PLAN = "plan"


# Emitted by the service itself, never appended by a client.
SYSTEM_TYPES = frozenset({Type.STATUS, Type.PLAN})
# Owners speak as the user; the lease holder speaks for the agent, its tools and itself.
USER_ROLES = frozenset({Role.USER})
WORKER_ROLES = frozenset({Role.ASSISTANT, Role.TOOL, Role.SYSTEM})


@dataclass(slots=True)
class NewEvent:
    """An event to append; the store assigns seq and create time."""

    role: str
    type: str
    content_text: str
    render_payload: dict[str, JSON] | None
    metadata: dict[str, JSON]
    client_key: str | None = None


@dataclass(slots=True)
class Event:
    """A stored event."""

    task_id: str
    seq: int
    role: str
    type: str
    content_text: str
    render_payload: dict[str, Any] | None
    metadata: dict[str, Any]
    client_key: str | None
    created_at: datetime
    # The transport's encoding, made once and shared by every subscriber that receives it.
    wire: Any = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an append answers per event: a duplicate client key answers the first receipt."""

    seq: int
    created_at: datetime
    client_key: str | None


def event_problems(event: NewEvent, *, by_worker: bool) -> list[tuple[str, str]]:
    """(field, problem) pairs for one event, relative to the event."""
    problems: list[tuple[str, str]] = []
    if event.type in SYSTEM_TYPES:
        problems.append(("type", f"{event.type} events are emitted by the service only"))
    allowed = WORKER_ROLES if by_worker else USER_ROLES
    if event.role not in allowed:
        who = "the lease holder" if by_worker else "the task's owner"
        names = ", ".join(sorted(allowed))
        problems.append(("role", f"{who} may append events with role {names} only"))
    if event.type == Type.NEXUS_RENDER:
        payload = event.render_payload or {}
        for key in ("target_zone", "component"):
            value = payload.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append(("render_payload", f"a nexus_render payload must name {key} (a non-empty string)"))
    return problems
