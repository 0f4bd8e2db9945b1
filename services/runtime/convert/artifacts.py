"""Artifacts: proto ↔ domain, and request validation (DESIGN §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nexus.kit import idempotency, validation
from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.idempotency import RequestKey
from nexus.kit.paging import Keyset
from nexus.kit.protos import timestamp
from nexus.kit.validation import Violations
from nexus.runtime.v1 import artifact_pb2, runtime_pb2
from services.runtime.convert.shared import Edit, Listing, Target, lease
from services.runtime.domain import artifacts as arts
from services.runtime.domain.artifacts import Artifact, ArtifactFilter, NewArtifact
from services.runtime.store.artifacts import ArtifactCursor


@dataclass(frozen=True, slots=True)
class Upload:
    """A CreateArtifact header: the artifact, and the key of its request_id (None without one).
    The key's principal is left to the store: it is the task's owner, whoever uploads."""

    artifact: NewArtifact
    key: RequestKey | None


@dataclass(frozen=True, slots=True)
class Download:
    """A DownloadArtifact request: the artifact, and the byte to start at."""

    artifact_id: str
    offset: int


def to_proto(artifact: Artifact) -> artifact_pb2.Artifact:
    message = artifact_pb2.Artifact(
        artifact_id=artifact.id,
        task_id=artifact.task_id,
        user_id=artifact.user_id,
        type=artifact.type,
        display_name=artifact.display_name,
        content_type=artifact.content_type,
        size_bytes=artifact.size_bytes,
        sha256=artifact.sha256,
        storage_uri=artifact.storage_uri,
        is_pinned=artifact.is_pinned,
        is_archived=artifact.is_archived,
        create_time=timestamp(artifact.created_at),
        update_time=timestamp(artifact.updated_at),
        etag=artifact.etag,
    )
    message.meta_data.update(artifact.meta_data)
    return message


def _invalid(field: str, description: str, reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
    return InvalidArgument(f"{field}: {description}", reason=reason, violations=[FieldViolation(field, description)])


async def header(requests: AsyncIterator[artifact_pb2.CreateArtifactRequest]) -> artifact_pb2.ArtifactHeader:
    """The stream's first message, which must be the header."""
    async for message in requests:
        if message.WhichOneof("part") != "header":
            raise _invalid("header", "the first message must be the header", reason="HEADER_REQUIRED")
        return message.header
    raise _invalid("header", "the stream ended before the header", reason="HEADER_REQUIRED")


async def chunks(requests: AsyncIterator[artifact_pb2.CreateArtifactRequest], declared: int) -> AsyncIterator[bytes]:
    """The bytes after the header: at most 1 MiB per message, never more than declared."""
    received = 0
    async for message in requests:
        if message.WhichOneof("part") == "header":
            raise _invalid("header", "only the first message may be a header")
        chunk = message.chunk
        if len(chunk) > arts.MAX_CHUNK_BYTES:
            raise _invalid("chunk", f"must be at most {arts.MAX_CHUNK_BYTES} bytes per message", "CHUNK_TOO_LARGE")
        received += len(chunk)
        if received > declared:
            raise _invalid("header.artifact.size_bytes", "the bytes sent exceed the declared size", "SIZE_MISMATCH")
        yield chunk


def verify(new: NewArtifact, size: int, digest: str) -> None:
    """The bytes received are the bytes declared."""
    if size != new.size_bytes:
        raise _invalid("header.artifact.size_bytes", "the bytes sent are fewer than the declared size", "SIZE_MISMATCH")
    if digest != new.sha256:
        raise _invalid("header.artifact.sha256", "does not match the bytes sent", "CHECKSUM_MISMATCH")


def upload(message: artifact_pb2.ArtifactHeader, *, by_worker: bool, max_bytes: int) -> Upload:
    """Violations name fields from the request, CreateArtifactRequest: `header.artifact.type`."""
    v = Violations()
    a = message.artifact
    tid = v.uuid("header.artifact.task_id", a.task_id)
    # What the request creates, without the lease it is sent under: a step that a worker runs
    # again under a new lease repeats its first upload.
    created = artifact_pb2.ArtifactHeader(artifact=a, request_id=message.request_id)
    key = idempotency.key(
        v, created, message.request_id, principal="", method="CreateArtifact", field="header.request_id"
    )
    lease(v, message.lease_id, by_worker=by_worker, field="header.lease_id")
    kind = v.text(
        "header.artifact.type", a.type, max_len=32, required=True, pattern=arts.TYPE, pattern_hint=arts.TYPE_HINT
    )
    name = v.text("header.artifact.display_name", a.display_name, max_len=arts.MAX_DISPLAY_NAME_CHARS, required=True)
    content_type = v.text(
        "header.artifact.content_type",
        a.content_type,
        max_len=255,
        pattern=arts.CONTENT_TYPE,
        pattern_hint=arts.CONTENT_TYPE_HINT,
    )
    if not 0 <= a.size_bytes <= max_bytes:
        v.add("header.artifact.size_bytes", f"must be from 0 to {max_bytes} bytes")
    v.text(
        "header.artifact.sha256",
        a.sha256,
        max_len=64,
        required=True,
        pattern=arts.SHA256,
        pattern_hint="must be 64 lowercase hex digits",
    )
    meta = v.struct("header.artifact.meta_data", a.meta_data)
    if not v:
        for problem in arts.meta_data_problems(meta, "header.artifact.meta_data"):
            v.add(problem.field, problem.description)
    v.raise_if_any()
    assert tid is not None
    new = NewArtifact(
        task_id=tid,
        user_id="",
        type=kind,
        display_name=name,
        content_type=content_type or arts.DEFAULT_CONTENT_TYPE,
        size_bytes=a.size_bytes,
        sha256=a.sha256,
        meta_data=meta,
        is_pinned=a.is_pinned,
    )
    return Upload(new, key)


def download(request: artifact_pb2.DownloadArtifactRequest) -> Download:
    v = Violations()
    aid = v.uuid("artifact_id", request.artifact_id)
    v.check(request.read_offset >= 0, "read_offset", "must not be negative")
    v.raise_if_any()
    assert aid is not None
    return Download(aid, request.read_offset)


def check_offset(artifact: Artifact, offset: int) -> None:
    if offset > artifact.size_bytes:
        raise _invalid("read_offset", "is past the end of the artifact")


def listing(request: artifact_pb2.ListArtifactsRequest, user_id: str | None) -> Listing[ArtifactFilter, ArtifactCursor]:
    """`user_id` is the calling user, or None for a worker (which must name a task)."""
    v = Violations()
    tid = v.uuid("task_id", request.task_id, required=user_id is None)
    v.enum("archive_filter", request.archive_filter, runtime_pb2.ArchiveFilter.DESCRIPTOR, required=False)
    kind = v.text("type", request.type, max_len=32, pattern=arts.TYPE, pattern_hint=arts.TYPE_HINT)
    if request.page_size < 0:
        v.add("page_size", "must not be negative")
    v.raise_if_any()
    archived = {runtime_pb2.ARCHIVE_FILTER_ARCHIVED: True, runtime_pb2.ARCHIVE_FILTER_ALL: None}.get(
        request.archive_filter, False
    )
    where = ArtifactFilter(user_id=user_id, task_id=tid, archived=archived, type=kind or None)
    return Listing(where, Keyset(ArtifactCursor, "artifacts", where.user_id, where.task_id, where.archived, where.type))


def edit(request: artifact_pb2.UpdateArtifactRequest, *, by_worker: bool) -> Edit:
    paths = validation.update_paths(request.update_mask, request.artifact, arts.EDITABLE)
    v = Violations()
    a = request.artifact
    aid = v.uuid("artifact.artifact_id", a.artifact_id)
    lease(v, request.lease_id, by_worker=by_worker)
    etag = v.etag("artifact.etag", a.etag)
    changes: dict[str, Any] = {}
    if "display_name" in paths:
        changes["display_name"] = v.text(
            "artifact.display_name", a.display_name, max_len=arts.MAX_DISPLAY_NAME_CHARS, required=True
        )
    if "is_pinned" in paths:
        changes["is_pinned"] = a.is_pinned
    if "is_archived" in paths:
        changes["is_archived"] = a.is_archived
    if "meta_data" in paths:
        meta = v.struct("artifact.meta_data", a.meta_data)
        for problem in arts.meta_data_problems(meta, "artifact.meta_data"):
            v.add(problem.field, problem.description)
        changes["meta_data"] = meta
    v.raise_if_any()
    assert aid is not None
    return Edit(aid, changes, etag)


def deletion(request: artifact_pb2.DeleteArtifactRequest, *, by_worker: bool) -> Target:
    v = Violations()
    aid = v.uuid("artifact_id", request.artifact_id)
    lease(v, request.lease_id, by_worker=by_worker)
    etag = v.etag("etag", request.etag)
    v.raise_if_any()
    assert aid is not None
    return Target(aid, etag)
