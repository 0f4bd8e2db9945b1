"""Artifacts' metadata (SQLAlchemy Core) and when their bytes may be deleted.

Bytes are content-addressed, so two artifacts with the same sha256 share them. Every change to
who holds a digest's bytes runs under a transaction-scoped advisory lock on that digest:
- create: lock, insert the row, commit the staged bytes to their address, commit;
- delete: lock, delete the row, count the rows left with that digest, commit; if none, a second
  transaction locks again, counts again and only then removes the bytes.
So bytes are removed only while no committed row names them and no create of the same digest
is between its insert and its commit. A crash between the two steps can leave unreferenced
bytes behind (wasted space, never a missing file); a sweep can collect them later.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit import paging
from nexus.kit.db import Database, bumped, read_page
from nexus.kit.errors import not_found
from nexus.kit.idempotency import RequestKey, RequestLog
from nexus.kit.paging import Rows
from nexus.kit.protos import check_etag
from services.runtime.blobs import BlobStore, Staged
from services.runtime.domain import writers
from services.runtime.domain.artifacts import Artifact, ArtifactFilter, NewArtifact
from services.runtime.domain.tasks import Actor
from services.runtime.store.tables import artifact, task, task_context
from services.runtime.store.tasks import TaskState, TaskStore


@dataclass(frozen=True)
class ArtifactCursor:
    """The artifacts' order: pinned first, then newest first."""

    is_pinned: bool
    created_at: datetime
    id: paging.UUID


def _artifact(row: Any) -> Artifact:
    return Artifact(
        id=row.id,
        task_id=row.task_id,
        user_id=row.user_id,
        type=row.type,
        display_name=row.display_name,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        storage_uri=row.storage_uri,
        meta_data=row.meta_data,
        is_pinned=row.is_pinned,
        is_archived=row.is_archived,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _digest_key(digest: str) -> int:
    """An advisory-lock key per digest (60 bits of it; a collision only serializes more)."""
    return int(digest[:15], 16)


async def _lock_digest(conn: AsyncConnection, digest: str) -> None:
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_digest_key(digest))))


def _owners(key: RequestKey | None, state: TaskState) -> RequestKey | None:
    """An upload's request id is its task owner's, whoever sends it (the owner, or any worker
    holding the lease): a step a worker runs again finds the artifact its first run wrote."""
    return None if key is None else replace(key, principal=state.user_id)


async def _visible(conn: AsyncConnection, owner: str, artifact_id: str) -> Artifact:
    row = (
        await conn.execute(sa.select(artifact).where(artifact.c.id == artifact_id, artifact.c.user_id == owner))
    ).one_or_none()
    if row is None:
        raise not_found("artifact")
    return _artifact(row)


class ArtifactStore:
    def __init__(self, db: Database, blobs: BlobStore, requests: RequestLog) -> None:
        self._db = db
        self._blobs = blobs
        self._requests = requests

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    async def prepare(self, actor: Actor, new: NewArtifact, key: RequestKey | None) -> Artifact | None:
        """Before any byte is read: the caller may write the task's artifacts. Returns the
        artifact a repeated request created the first time, if any (its bytes need not come)."""
        async with self._db.connection() as conn:
            state = await TaskStore.read_state(conn, actor, new.task_id)
            writers.require_owner_or_holder(actor, state.lease)
            first = await self._requests.recorded(conn, _owners(key, state))
            return None if first is None else await _visible(conn, state.user_id, first)

    async def create(self, actor: Actor, new: NewArtifact, key: RequestKey | None, staged: Staged) -> Artifact:
        """Makes verified, staged bytes an artifact: the row and the bytes appear together."""
        uri = self._blobs.address(new.sha256)
        artifact_id = str(uuid.uuid4())
        async with self._db.transaction() as conn:
            # Checked again: a lease may have expired while the bytes arrived.
            state = await TaskStore.read_state(conn, actor, new.task_id)
            writers.require_owner_or_holder(actor, state.lease)
            first = await self._requests.claim(conn, _owners(key, state), artifact_id)
            if first is not None:  # a concurrent retry of the same request came first
                return await _visible(conn, state.user_id, first)
            await _lock_digest(conn, new.sha256)
            row = (
                await conn.execute(
                    artifact.insert()
                    .values(
                        id=artifact_id,
                        task_id=new.task_id,
                        user_id=state.user_id,
                        type=new.type,
                        display_name=new.display_name,
                        content_type=new.content_type,
                        size_bytes=new.size_bytes,
                        sha256=new.sha256,
                        storage_uri=uri,
                        meta_data=new.meta_data,
                        is_pinned=new.is_pinned,
                        is_archived=False,
                        version=1,
                    )
                    .returning(artifact)
                )
            ).one()
            await self._blobs.commit(staged, uri)
        return _artifact(row)

    async def get(self, actor: Actor, artifact_id: str) -> Artifact:
        async with self._db.connection() as conn:
            row = (await conn.execute(sa.select(artifact).where(artifact.c.id == artifact_id))).one_or_none()
        if row is None or not actor.can_see(row.user_id):
            raise not_found("artifact")
        return _artifact(row)

    async def page(self, actor: Actor, where: ArtifactFilter, page: Rows[Artifact, ArtifactCursor]) -> None:
        """Pinned first, then newest first. An artifact counts as archived when it or its task
        is archived (seed 003: archiving is the task's, the artifact's flag archives it alone)."""
        query = sa.select(artifact).join(task, task.c.id == artifact.c.task_id)
        async with self._db.connection() as conn:
            if where.task_id is not None:
                await TaskStore.read_state(conn, actor, where.task_id)
                query = query.where(artifact.c.task_id == where.task_id)
            if where.user_id is not None:
                query = query.where(artifact.c.user_id == where.user_id)
            archived = sa.or_(artifact.c.is_archived, task.c.is_archived)
            if where.archived is True:
                query = query.where(archived)
            elif where.archived is False:
                query = query.where(sa.not_(archived))
            if where.type is not None:
                query = query.where(artifact.c.type == where.type)
            after = page.after
            if after is not None:
                query = query.where(
                    sa.tuple_(artifact.c.is_pinned, artifact.c.created_at, artifact.c.id)
                    < sa.tuple_(
                        sa.literal(after.is_pinned),
                        sa.literal(after.created_at, artifact.c.created_at.type),
                        sa.literal(after.id, artifact.c.id.type),
                    )
                )
            query = query.order_by(artifact.c.is_pinned.desc(), artifact.c.created_at.desc(), artifact.c.id.desc())
            await read_page(conn, query, page, _artifact)

    async def _lock_writable(self, conn: AsyncConnection, actor: Actor, artifact_id: str, etag: str) -> Any:
        row = (
            await conn.execute(sa.select(artifact).where(artifact.c.id == artifact_id).with_for_update())
        ).one_or_none()
        if row is None or not actor.can_see(row.user_id):
            raise not_found("artifact")
        state: TaskState = await TaskStore.read_state(conn, actor, row.task_id)
        writers.require_owner_or_holder(actor, state.lease)
        check_etag(etag, row.version, "artifact")
        return row

    async def update(self, actor: Actor, artifact_id: str, changes: dict[str, Any], etag: str) -> Artifact:
        async with self._db.transaction() as conn:
            await self._lock_writable(conn, actor, artifact_id, etag)
            row = (
                await conn.execute(
                    sa.update(artifact)
                    .where(artifact.c.id == artifact_id)
                    .values(**changes, **bumped(artifact))
                    .returning(artifact)
                )
            ).one()
        return _artifact(row)

    async def delete(self, actor: Actor, artifact_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            row = await self._lock_writable(conn, actor, artifact_id, etag)
            await _lock_digest(conn, row.sha256)
            await conn.execute(sa.delete(artifact).where(artifact.c.id == artifact_id))
            # It is no longer an active file of its task.
            await conn.execute(
                sa.update(task_context)
                .where(
                    task_context.c.task_id == row.task_id,
                    sa.literal(artifact_id, artifact.c.id.type) == sa.any_(task_context.c.active_files),
                )
                .values(
                    active_files=sa.func.array_remove(
                        task_context.c.active_files, sa.cast(artifact_id, artifact.c.id.type)
                    ),
                    **bumped(task_context),
                )
            )
            left = await self._holders(conn, row.sha256)
        if left == 0:
            await self._delete_bytes(row.sha256, row.storage_uri)

    async def _delete_bytes(self, digest: str, uri: str) -> None:
        """Under the digest's lock, and only if still no artifact holds the bytes (a create of
        the same digest may have committed since the row was deleted)."""
        async with self._db.transaction() as conn:
            await _lock_digest(conn, digest)
            if await self._holders(conn, digest) == 0:
                await self._blobs.delete(uri)

    @staticmethod
    async def _holders(conn: AsyncConnection, digest: str) -> int:
        count: int = (
            await conn.execute(sa.select(sa.func.count()).select_from(artifact).where(artifact.c.sha256 == digest))
        ).scalar_one()
        return count

    @staticmethod
    async def existing_ids(conn: AsyncConnection, task_id: str, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are artifacts of the task (for a context's active files)."""
        rows = await conn.execute(
            sa.select(artifact.c.id).where(artifact.c.task_id == task_id, artifact.c.id.in_(list(ids)))
        )
        return {r.id for r in rows}
