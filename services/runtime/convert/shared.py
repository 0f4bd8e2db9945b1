"""What many of the runtime's requests share: a required id, a worker's lease field, the enum
tables, and the shapes of an edit and of a targeted write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus.kit.validation import Violations


@dataclass(frozen=True, slots=True)
class Edit:
    """An Update request: the resource, the checked values of its masked fields, its etag."""

    id: str
    changes: dict[str, Any]
    etag: str


@dataclass(frozen=True, slots=True)
class Target:
    """A write that names one resource and the etag it was read at (Pause, Delete)."""

    id: str
    etag: str


def enum_names(enum: Any, prefix: str) -> tuple[dict[int, str], dict[str, int]]:
    """A proto enum's numbers to the store's lower-case names, and back (UNSPECIFIED has none)."""
    to_name = {v.number: v.name.removeprefix(prefix).lower() for v in enum.DESCRIPTOR.values if v.number}
    return to_name, {name: number for number, name in to_name.items()}


def required_id(field: str, value: str) -> str:
    v = Violations()
    checked = v.uuid(field, value)
    v.raise_if_any()
    assert checked is not None
    return checked


def lease(v: Violations, value: str, *, by_worker: bool, field: str = "lease_id") -> None:
    """Workers name the lease they hold; owners send none."""
    if by_worker:
        v.uuid(field, value)
    elif value:
        v.add(field, "is for workers; owners leave it empty")
