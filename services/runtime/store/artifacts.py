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
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kit.db import Database
from nexus.kit.errors import Aborted, NotFound
from services.runtime.blobs import BlobStore, Staged
from services.runtime.domain import writers
from services.runtime.domain.artifacts import Artifact, ArtifactFilter, NewArtifact
from services.runtime.domain.tasks import Actor
from services.runtime.store.tables import artifact, task, task_context
from services.runtime.store.tasks import TaskState, TaskStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _not_found() -> NotFound:
    return NotFound("artifact not found", reason="ARTIFACT_NOT_FOUND")


def _digest_key(digest: str) -> int:
    """An advisory-lock key per digest (60 bits of it; a collision only serializes more)."""
    return int(digest[:15], 16)


async def _lock_digest(conn: AsyncConnection, digest: str) -> None:
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_digest_key(digest))))


def artifact_cursor(item: Artifact) -> list[Any]:
    """The keyset after `item` in the artifacts' order (what `page` takes as its cursor)."""
    return [item.is_pinned, (item.created_at - _EPOCH) // timedelta(microseconds=1), item.id]


class ArtifactStore:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    async def prepare(self, actor: Actor, new: NewArtifact) -> Artifact | None:
        """Before any byte is read: the caller may write the task's artifacts. Returns the
        artifact a repeated request_id created the first time, if any."""
        async with self._db.connection() as conn:
            state = await TaskStore.read_state(conn, actor, new.task_id)
            writers.require_owner_or_holder(actor, state.lease)
            if new.request_id is None:
                return None
            row = (
                await conn.execute(
                    sa.select(artifact).where(
                        artifact.c.user_id == state.user_id, artifact.c.request_id == new.request_id
                    )
                )
            ).one_or_none()
        return None if row is None else _artifact(row)

    async def create(self, actor: Actor, new: NewArtifact, staged: Staged) -> Artifact:
        """Makes verified, staged bytes an artifact: the row and the bytes appear together."""
        uri = self._blobs.address(new.sha256)
        async with self._db.transaction() as conn:
            # Checked again: a lease may have expired while the bytes arrived.
            state = await TaskStore.read_state(conn, actor, new.task_id)
            writers.require_owner_or_holder(actor, state.lease)
            await _lock_digest(conn, new.sha256)
            row = (
                await conn.execute(
                    insert(artifact)
                    .values(
                        id=str(uuid.uuid4()),
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
                        request_id=new.request_id,
                        version=1,
                    )
                    .on_conflict_do_nothing(constraint="artifact_request_id_unique")
                    .returning(artifact)
                )
            ).one_or_none()
            if row is None:  # a concurrent retry of the same request won
                row = (
                    await conn.execute(
                        sa.select(artifact).where(
                            artifact.c.user_id == state.user_id, artifact.c.request_id == new.request_id
                        )
                    )
                ).one()
                return _artifact(row)
            await self._blobs.commit(staged, uri)
        return _artifact(row)

    async def get(self, actor: Actor, artifact_id: str) -> Artifact:
        async with self._db.connection() as conn:
            row = (await conn.execute(sa.select(artifact).where(artifact.c.id == artifact_id))).one_or_none()
        if row is None or not actor.can_see(row.user_id):
            raise _not_found()
        return _artifact(row)

    async def page(
        self, actor: Actor, where: ArtifactFilter, limit: int, cursor: list[Any] | None
    ) -> tuple[list[Artifact], list[Any] | None]:
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
            if cursor is not None:
                pinned, created_us, last_id = cursor
                query = query.where(
                    sa.tuple_(artifact.c.is_pinned, artifact.c.created_at, artifact.c.id)
                    < sa.tuple_(
                        sa.literal(pinned),
                        sa.literal(_EPOCH + timedelta(microseconds=created_us), sa.DateTime(timezone=True)),
                        sa.literal(last_id, artifact.c.id.type),
                    )
                )
            query = query.order_by(
                artifact.c.is_pinned.desc(), artifact.c.created_at.desc(), artifact.c.id.desc()
            ).limit(limit + 1)
            rows = (await conn.execute(query)).all()
        items = [_artifact(r) for r in rows[:limit]]
        return items, None if len(rows) <= limit else artifact_cursor(items[-1])

    async def _lock_writable(self, conn: AsyncConnection, actor: Actor, artifact_id: str, etag: str) -> Any:
        row = (
            await conn.execute(sa.select(artifact).where(artifact.c.id == artifact_id).with_for_update())
        ).one_or_none()
        if row is None or not actor.can_see(row.user_id):
            raise _not_found()
        state: TaskState = await TaskStore.read_state(conn, actor, row.task_id)
        writers.require_owner_or_holder(actor, state.lease)
        if etag and etag != _artifact(row).etag:
            raise Aborted("the artifact changed since it was read; read it again", reason="ETAG_MISMATCH")
        return row

    async def update(self, actor: Actor, artifact_id: str, changes: dict[str, Any], etag: str) -> Artifact:
        async with self._db.transaction() as conn:
            await self._lock_writable(conn, actor, artifact_id, etag)
            row = (
                await conn.execute(
                    sa.update(artifact)
                    .where(artifact.c.id == artifact_id)
                    .values(**changes, version=artifact.c.version + 1, updated_at=sa.func.now())
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
                    version=task_context.c.version + 1,
                    updated_at=sa.func.now(),
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
