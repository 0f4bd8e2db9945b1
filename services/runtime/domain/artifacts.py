"""Artifacts: a task's files, as metadata plus bytes in a blob store. Pure rules, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nexus.kit.errors import FieldViolation
from nexus.kit.protos import etag
from nexus.kit.validation import JSON

MiB = 1024 * 1024
MAX_CHUNK_BYTES = 1 * MiB
DOWNLOAD_CHUNK_BYTES = 256 * 1024
MAX_DISPLAY_NAME_CHARS = 500
MAX_THUMBNAIL_DATA_URI_CHARS = 64 * 1024
MAX_THUMBNAIL_SIDE = 4096
EDITABLE = ("display_name", "is_pinned", "is_archived", "meta_data")
DEFAULT_CONTENT_TYPE = "application/octet-stream"

TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")
TYPE_HINT = "must be 1-32 characters of a-z, 0-9 or '_', starting with a letter (image, pdf, chart_data, …)"
# RFC 6838 type/subtype, with optional parameters (`text/plain; charset=utf-8`).
CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(;[ -~]*)?")
CONTENT_TYPE_HINT = "must be a MIME type such as image/png"
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(slots=True)
class NewArtifact:
    task_id: str
    user_id: str  # the caller (owners) or "" (workers: the task's owner is taken from the task)
    type: str
    display_name: str
    content_type: str
    size_bytes: int
    sha256: str
    meta_data: dict[str, JSON]
    is_pinned: bool


@dataclass(slots=True)
class Artifact:
    id: str
    task_id: str
    user_id: str
    type: str
    display_name: str
    content_type: str
    size_bytes: int
    sha256: str
    storage_uri: str
    meta_data: dict[str, Any]
    is_pinned: bool
    is_archived: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return etag(self.version)


@dataclass(frozen=True, slots=True)
class ArtifactFilter:
    """Which artifacts a list shows: one task's, or all of a user's."""

    user_id: str | None  # None: a worker listing one task
    task_id: str | None
    archived: bool | None = False  # None: archived or not (artifact or its task)
    type: str | None = None


def meta_data_problems(meta: dict[str, JSON], field: str) -> list[FieldViolation]:
    """The sidebar's thumbnail, when given, must be usable without fetching anything else."""
    thumbnail = meta.get("thumbnail")
    if thumbnail is None:
        return []
    path = f"{field}.thumbnail"
    if not isinstance(thumbnail, dict):
        return [FieldViolation(path, "must be an object with data_uri, width and height")]
    problems: list[FieldViolation] = []
    data_uri = thumbnail.get("data_uri")
    if data_uri is not None and (
        not isinstance(data_uri, str)
        or not data_uri.startswith("data:")
        or len(data_uri) > MAX_THUMBNAIL_DATA_URI_CHARS
    ):
        problems.append(
            FieldViolation(
                f"{path}.data_uri", f"must be a data: URI of at most {MAX_THUMBNAIL_DATA_URI_CHARS} characters"
            )
        )
    for side in ("width", "height"):
        value = thumbnail.get(side)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THUMBNAIL_SIDE
        ):
            problems.append(FieldViolation(f"{path}.{side}", f"must be a whole number from 1 to {MAX_THUMBNAIL_SIDE}"))
    return problems
