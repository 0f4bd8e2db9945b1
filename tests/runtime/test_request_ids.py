"""Idempotent creates (AIP-155) through the runtime's request log (kit.idempotency): a repeat
gets the first resource; the same request_id with another request is REQUEST_ID_REUSED; an
upload's key leaves out the lease it is sent under; ids are remembered for their lifetime
(NEXUS_REQUEST_ID_TTL_S), then forgotten and pruned."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import psycopg

from launch.registry import RUNTIME
from nexus.kit.config import Settings
from nexus.kit.postgres import service_url
from nexus.kit.server import running
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, schedule_pb2, session_pb2, session_pb2_grpc, task_pb2
from tests.runtime.conftest import Metadata, claim_one, create_task
from tests.support import Tokens, eventually, rpc_error


def _task(agent: str, request_id: str, title: str) -> runtime_pb2.CreateTaskRequest:
    task = task_pb2.Task(agent_id=agent, trigger_source=task_pb2.TRIGGER_SOURCE_CHAT_MANUAL, title=title)
    return runtime_pb2.CreateTaskRequest(task=task, request_id=request_id)


def _session(request_id: str, title: str) -> session_pb2.CreateSessionRequest:
    return session_pb2.CreateSessionRequest(session=session_pb2.Session(title=title), request_id=request_id)


def _schedule(agent: str, request_id: str, title: str) -> schedule_pb2.CreateScheduleRequest:
    command = schedule_pb2.ScheduledCommand(agent_id=agent, title=title)
    return schedule_pb2.CreateScheduleRequest(
        schedule=schedule_pb2.Schedule(cron="0 * * * *", command=command), request_id=request_id
    )


def _header(task_id: str, request_id: str, data: bytes, lease_id: str = "") -> artifact_pb2.ArtifactHeader:
    artifact = artifact_pb2.Artifact(
        task_id=task_id,
        type="pdf",
        display_name="report",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return artifact_pb2.ArtifactHeader(artifact=artifact, request_id=request_id, lease_id=lease_id)


async def _upload(artifacts: Any, metadata: Metadata, header: artifact_pb2.ArtifactHeader, *chunks: bytes) -> Any:
    async def messages() -> Any:
        yield artifact_pb2.CreateArtifactRequest(header=header)
        for chunk in chunks:
            yield artifact_pb2.CreateArtifactRequest(chunk=chunk)

    return await artifacts.CreateArtifact(messages(), metadata=metadata)


async def test_a_request_id_used_again_for_another_request_is_refused_by_every_create(
    stub: Any, sessions: Any, schedules: Any, artifacts: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    task_id = (await create_task(stub, user, agent)).task_id
    creates: list[tuple[Callable[[str, str], Any], str]] = [
        (lambda rid, title: stub.CreateTask(_task(agent, rid, title), metadata=user), "request_id"),
        (lambda rid, title: sessions.CreateSession(_session(rid, title), metadata=user), "request_id"),
        (lambda rid, title: schedules.CreateSchedule(_schedule(agent, rid, title), metadata=user), "request_id"),
        (
            lambda rid, title: _upload(artifacts, user, _header(task_id, rid, title.encode()), title.encode()),
            "header.request_id",
        ),
    ]
    for create, field in creates:
        request_id = str(uuid.uuid4())
        first = await create(request_id, "first")
        assert await create(request_id, "first") == first  # a repeat: the first, as it is now
        failure = await rpc_error(create(request_id, "second"))
        assert (failure.code, failure.reason, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "REQUEST_ID_REUSED",
            {field},
        ), field


async def test_an_upload_repeated_under_a_new_lease_or_by_another_worker_returns_the_first_artifact(
    stub: Any, artifacts: Any, owner: tuple[str, Metadata], tokens: Tokens, agent: str
) -> None:
    """A step a worker runs again after its lease ran out uploads with the same request_id under
    a new lease, perhaps from another worker: the same upload, so the first artifact."""
    _, user = owner
    task = await create_task(stub, user, agent)
    data = b"rendered from a template"
    request_id = str(uuid.uuid4())
    first_worker = tokens.service("runtime.worker", name=f"w-{uuid.uuid4().hex[:8]}")
    claimed = await claim_one(stub, first_worker, agent, lease_s=0.2)
    made = await _upload(artifacts, first_worker, _header(task.task_id, request_id, data, claimed.lease.lease_id), data)

    async def requeued() -> bool:
        reread = await stub.GetTask(runtime_pb2.GetTaskRequest(task_id=task.task_id), metadata=user)
        return bool(reread.status == task_pb2.TASK_STATUS_QUEUED)

    await eventually(requeued, "the lease to expire")
    second_worker = tokens.service("runtime.worker", name=f"w-{uuid.uuid4().hex[:8]}")
    again = await claim_one(stub, second_worker, agent)
    header = _header(task.task_id, request_id, data, again.lease.lease_id)
    assert (await _upload(artifacts, second_worker, header, data)).artifact_id == made.artifact_id
    # Known before its bytes: a repeat that sends only the header is answered all the same.
    assert (await _upload(artifacts, second_worker, header)).artifact_id == made.artifact_id


def _entries(settings: Settings, request_id: str) -> int:
    with psycopg.connect(service_url(settings, "runtime", driver="postgresql"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM runtime.request_log WHERE request_id = %s", [request_id]).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_request_id_past_its_lifetime_creates_again_and_its_entry_is_pruned(
    settings: Settings, owner: tuple[str, Metadata], open_channel: Callable[[str], grpc.aio.Channel]
) -> None:
    _, user = owner
    async with running(RUNTIME, dataclasses.replace(settings, request_id_ttl_s=0.5)) as short:
        sessions: Any = session_pb2_grpc.SessionServiceStub(open_channel(short.address))
        request = _session(str(uuid.uuid4()), "remembered a while")
        first = await sessions.CreateSession(request, metadata=user)

        async def created_again() -> session_pb2.Session | None:
            session = await sessions.CreateSession(request, metadata=user)
            return session if session.session_id != first.session_id else None

        again = await eventually(created_again, "the request_id to be forgotten")
        assert again.title == first.title

        forgotten = str(uuid.uuid4())
        await sessions.CreateSession(_session(forgotten, "pruned"), metadata=user)
        assert _entries(settings, forgotten) == 1
        await eventually(lambda: _entries(settings, forgotten) == 0, "the expired entry to be pruned")
