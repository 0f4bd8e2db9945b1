"""Sessions (seed 000): a user's groups of tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nexus.kit.protos import etag

MAX_TITLE_CHARS = 500
EDITABLE = ("title", "config")


@dataclass(slots=True)
class NewSession:
    user_id: str
    title: str
    config: dict[str, Any]


@dataclass(slots=True)
class Session:
    id: str
    user_id: str
    title: str
    config: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return etag(self.version)
