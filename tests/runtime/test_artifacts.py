"""Artifacts: streamed upload (verified, capped, invisible until complete), streamed download,
get/list/update/delete, and content-addressed bytes stored once."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from launch.registry import RUNTIME
from nexus.kit.config import Settings
from nexus.kit.server import running
from nexus.runtime.v1 import artifact_pb2, artifact_pb2_grpc, runtime_pb2, task_pb2
from tests.runtime.conftest import Metadata, claim_one, create_task, upload
from tests.support import Tokens, eventually, rpc_error

MiB = 1 << 20


def blob_files(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "artifacts" / "sha256").rglob("*"), key=str)


def staged_files(settings: Settings) -> list[Path]:
    return list((settings.data_dir / "artifacts" / "tmp").iterdir())


async def no_staged_files(settings: Settings) -> None:
    """The server discards a failed upload's bytes as the call ends; wait for that."""
    await eventually(lambda: not staged_files(settings), "the failed upload's staged bytes to be discarded")


async def listed(artifacts: Any, metadata: Metadata, **filters: Any) -> list[str]:
    reply = await artifacts.ListArtifacts(artifact_pb2.ListArtifactsRequest(**filters), metadata=metadata)
    return [a.artifact_id for a in reply.artifacts]


async def download(artifacts: Any, metadata: Metadata, artifact_id: str, offset: int = 0) -> tuple[Any, bytes]:
    request = artifact_pb2.DownloadArtifactRequest(artifact_id=artifact_id, read_offset=offset)
    messages = [m async for m in artifacts.DownloadArtifact(request, metadata=metadata)]
    assert all(len(m.chunk) <= MiB for m in messages)
    return messages[0].artifact, b"".join(m.chunk for m in messages[1:])


async def test_upload_then_download_in_chunks_with_the_declared_size_and_sha256(
    stub: Any, artifacts: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    user_id, user = owner
    task = await create_task(stub, user, agent)
    data = os.urandom(2 * MiB + 12345)
    meta: dict[str, Any] = {"thumbnail": {"data_uri": "data:image/png;base64,iVBORw0KGgo=", "width": 64, "height": 48}}
    created = await upload(
        artifacts, user, task.task_id, data, type="image", display_name="chart.png", content_type="image/png"
    )
    assert (created.user_id, created.size_bytes, created.sha256) == (
        user_id,
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert created.storage_uri == f"local:sha256/{created.sha256[:2]}/{created.sha256[2:4]}/{created.sha256}"
    assert (created.type, created.content_type) == ("image", "image/png")
    got = await artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(artifact_id=created.artifact_id), metadata=user)
    assert got == created
    header, body = await download(artifacts, user, created.artifact_id)
    assert header == created and body == data
    _, tail = await download(artifacts, user, created.artifact_id, offset=len(data) - 10)
    assert tail == data[-10:]
    # meta_data carries the sidebar's thumbnail.
    update = artifact_pb2.UpdateArtifactRequest(
        artifact=artifact_pb2.Artifact(artifact_id=created.artifact_id, etag=created.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["meta_data"]),
    )
    update.artifact.meta_data.update(meta)
    updated = await artifacts.UpdateArtifact(update, metadata=user)
    assert updated.meta_data["thumbnail"]["width"] == 64 and updated.etag != created.etag
    stale = await rpc_error(artifacts.UpdateArtifact(update, metadata=user))
    assert (stale.code, stale.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    update.artifact.etag = ""
    update.artifact.meta_data.update({"thumbnail": {"width": 0, "data_uri": "https://x/y.png"}})
    bad = await rpc_error(artifacts.UpdateArtifact(update, metadata=user))
    assert bad.fields == {"artifact.meta_data.thumbnail.width", "artifact.meta_data.thumbnail.data_uri"}


async def test_the_same_bytes_uploaded_twice_are_stored_once_and_survive_deleting_one(
    stub: Any, artifacts: Any, tokens: Tokens, settings: Settings, agent: str
) -> None:
    _, alice = tokens.user()
    _, bob = tokens.user()
    data = b"same bytes " + uuid.uuid4().bytes
    first = await upload(artifacts, alice, (await create_task(stub, alice, agent)).task_id, data)
    second = await upload(artifacts, bob, (await create_task(stub, bob, agent)).task_id, data)
    assert first.artifact_id != second.artifact_id and first.storage_uri == second.storage_uri
    stored = [p for p in blob_files(settings) if p.name == first.sha256]
    assert len(stored) == 1 and stored[0].read_bytes() == data
    await artifacts.DeleteArtifact(artifact_pb2.DeleteArtifactRequest(artifact_id=first.artifact_id), metadata=alice)
    assert (await download(artifacts, bob, second.artifact_id))[1] == data
    await artifacts.DeleteArtifact(artifact_pb2.DeleteArtifactRequest(artifact_id=second.artifact_id), metadata=bob)
    assert not [p for p in blob_files(settings) if p.name == first.sha256]
    failure = await rpc_error(
        artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(artifact_id=second.artifact_id), metadata=bob)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "ARTIFACT_NOT_FOUND")


async def test_an_upload_cut_off_midway_leaves_nothing_visible(
    stub: Any, artifacts: Any, owner: tuple[str, Metadata], settings: Settings, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    data = os.urandom(3 * MiB)
    digest = hashlib.sha256(data).hexdigest()
    sent_some = asyncio.Event()

    async def messages() -> Any:
        header = artifact_pb2.ArtifactHeader(
            artifact=artifact_pb2.Artifact(
                task_id=task.task_id, type="pdf", display_name="big.pdf", size_bytes=len(data), sha256=digest
            )
        )
        yield artifact_pb2.CreateArtifactRequest(header=header)
        yield artifact_pb2.CreateArtifactRequest(chunk=data[:MiB])
        sent_some.set()
        await asyncio.Event().wait()  # the client stalls, and is then cut off

    call = artifacts.CreateArtifact(messages(), metadata=user)
    await sent_some.wait()
    await eventually(lambda: staged_files(settings), "the server to begin staging the bytes")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await no_staged_files(settings)
    assert await listed(artifacts, user, task_id=task.task_id, archive_filter=runtime_pb2.ARCHIVE_FILTER_ALL) == []
    assert not [p for p in blob_files(settings) if p.name == digest]


async def test_uploads_that_do_not_match_their_declaration_fail_and_leave_nothing(
    stub: Any, artifacts: Any, owner: tuple[str, Metadata], settings: Settings, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    data = b"x" * 5000

    async def send(*messages: artifact_pb2.CreateArtifactRequest) -> Any:
        async def gen() -> Any:
            for m in messages:
                yield m

        return await artifacts.CreateArtifact(gen(), metadata=user)

    def head(
        size: int = len(data), digest: str = hashlib.sha256(data).hexdigest()
    ) -> artifact_pb2.CreateArtifactRequest:
        artifact = artifact_pb2.Artifact(
            task_id=task.task_id, type="pdf", display_name="a", size_bytes=size, sha256=digest
        )
        return artifact_pb2.CreateArtifactRequest(header=artifact_pb2.ArtifactHeader(artifact=artifact))

    def chunk(b: bytes) -> artifact_pb2.CreateArtifactRequest:
        return artifact_pb2.CreateArtifactRequest(chunk=b)

    cases = [
        (send(head(digest="0" * 64), chunk(data)), "CHECKSUM_MISMATCH"),
        (send(head(), chunk(data[:100])), "SIZE_MISMATCH"),
        (send(head(size=10), chunk(data)), "SIZE_MISMATCH"),
        (send(head(size=MiB + 1, digest="0" * 64), chunk(b"y" * (MiB + 1))), "CHUNK_TOO_LARGE"),
        (send(chunk(data)), "HEADER_REQUIRED"),
        (send(), "HEADER_REQUIRED"),
        (send(head(), chunk(data[:10]), head()), "INVALID_ARGUMENT"),
    ]
    for call, reason in cases:
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    # The cap: declared above it, refused before any byte is read.
    failure = await rpc_error(send(head(size=100 * MiB + 1, digest="0" * 64)))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and failure.fields == {"header.artifact.size_bytes"}
    await no_staged_files(settings)
    assert await listed(artifacts, user, task_id=task.task_id) == []


async def test_the_size_cap_is_configurable(
    stub: Any, owner: tuple[str, Metadata], settings: Settings, open_channel: Any, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    small = dataclasses.replace(settings, artifact_max_bytes=1000)
    async with running(RUNTIME, small) as server:
        capped = artifact_pb2_grpc.ArtifactServiceStub(open_channel(server.address))
        assert (await upload(capped, user, task.task_id, b"z" * 1000)).size_bytes == 1000
        failure = await rpc_error(upload(capped, user, task.task_id, b"z" * 1001))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"header.artifact.size_bytes"})


async def test_lists_put_pinned_first_hide_archived_and_span_the_callers_tasks(
    stub: Any, artifacts: Any, tokens: Tokens, agent: str
) -> None:
    _, user = tokens.user()
    one = await create_task(stub, user, agent)
    two = await create_task(stub, user, agent)
    a = await upload(artifacts, user, one.task_id, b"a", type="image")
    b = await upload(artifacts, user, one.task_id, b"b", type="pdf")
    c = await upload(artifacts, user, two.task_id, b"c", type="pdf")
    d = await upload(artifacts, user, two.task_id, b"d", type="chart_data")

    async def update(artifact_id: str, **fields: Any) -> None:
        request = artifact_pb2.UpdateArtifactRequest(
            artifact=artifact_pb2.Artifact(artifact_id=artifact_id, **fields),
            update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
        )
        await artifacts.UpdateArtifact(request, metadata=user)

    await update(a.artifact_id, is_pinned=True, display_name="pinned")
    await update(b.artifact_id, is_archived=True)
    assert await listed(artifacts, user) == [a.artifact_id, d.artifact_id, c.artifact_id]
    assert await listed(artifacts, user, task_id=one.task_id) == [a.artifact_id]
    assert await listed(artifacts, user, type="pdf") == [c.artifact_id]
    assert await listed(artifacts, user, archive_filter=runtime_pb2.ARCHIVE_FILTER_ARCHIVED) == [b.artifact_id]
    # Archiving a task hides its artifacts too.
    await stub.UpdateTask(
        runtime_pb2.UpdateTaskRequest(
            task=task_pb2.Task(task_id=two.task_id, is_archived=True),
            update_mask=field_mask_pb2.FieldMask(paths=["is_archived"]),
        ),
        metadata=user,
    )
    assert await listed(artifacts, user) == [a.artifact_id]
    everything: list[str] = []
    token = ""
    while True:
        page = await artifacts.ListArtifacts(
            artifact_pb2.ListArtifactsRequest(
                archive_filter=runtime_pb2.ARCHIVE_FILTER_ALL, page_size=1, page_token=token
            ),
            metadata=user,
        )
        everything += [x.artifact_id for x in page.artifacts]
        token = page.next_page_token
        if not token:
            break
    assert everything == [a.artifact_id, d.artifact_id, c.artifact_id, b.artifact_id]


async def test_the_lease_holder_writes_artifacts_of_its_task_and_creates_are_idempotent(
    stub: Any, artifacts: Any, owner: tuple[str, Metadata], worker: Metadata, tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    claimed = await claim_one(stub, worker, agent)
    lease = claimed.lease.lease_id
    data = b"rendered from a template"
    request_id = str(uuid.uuid4())

    async def create(metadata: Metadata, lease_id: str) -> Any:
        header = artifact_pb2.ArtifactHeader(
            artifact=artifact_pb2.Artifact(
                task_id=task.task_id,
                type="pdf",
                display_name="report",
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            ),
            lease_id=lease_id,
            request_id=request_id,
        )

        async def gen() -> Any:
            yield artifact_pb2.CreateArtifactRequest(header=header)
            yield artifact_pb2.CreateArtifactRequest(chunk=data)

        return await artifacts.CreateArtifact(gen(), metadata=metadata)

    made = await create(worker, lease)
    assert (await create(worker, lease)).artifact_id == made.artifact_id
    other = tokens.service("runtime.worker", name="other-worker")
    failure = await rpc_error(create(other, lease))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")
    assert await listed(artifacts, worker, task_id=task.task_id) == [made.artifact_id]
    failure = await rpc_error(artifacts.ListArtifacts(artifact_pb2.ListArtifactsRequest(), metadata=worker))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and failure.fields == {"task_id"}
