"""What many of the runtime's requests share: a worker's lease field, the enum tables, and the
shapes of a list, an edit and a targeted write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nexus.kit.paging import Keyset
from nexus.kit.validation import Violations

W = TypeVar("W")
C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Listing(Generic[W, C]):
    """A List request, checked: what it lists (`where`), and the page tokens of that list."""

    where: W
    keyset: Keyset[C]


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


def lease(v: Violations, value: str, *, by_worker: bool, field: str = "lease_id") -> None:
    """Workers name the lease they hold; owners send none."""
    if by_worker:
        v.uuid(field, value)
    elif value:
        v.add(field, "is for workers; owners leave it empty")
