"""Transport of the workspace services: sessions, plan/context/memory, artifacts, schedules.
Each RPC: who is calling (access) → validate (convert) → store → convert back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from google.protobuf import empty_pb2

from nexus.kit import paging
from nexus.kit.validation import required_uuid
from nexus.runtime.v1 import (
    artifact_pb2,
    artifact_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)
from services.runtime import access, convert
from services.runtime.domain import artifacts as arts
from services.runtime.domain.schedules import State
from services.runtime.references import References
from services.runtime.store.artifacts import ArtifactStore
from services.runtime.store.schedules import ScheduleStore
from services.runtime.store.sessions import SessionStore
from services.runtime.store.workspace import WorkspaceStore

Context = Any
EMPTY = empty_pb2.Empty()


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    def __init__(self, sessions: SessionStore, max_message_bytes: int) -> None:
        self._sessions = sessions
        self._budget = partial(paging.Budget, max_message_bytes)

    async def CreateSession(self, request: session_pb2.CreateSessionRequest, context: Context) -> session_pb2.Session:
        creation = convert.sessions.creation(request, access.user())
        return convert.sessions.to_proto(await self._sessions.create(creation.session, creation.key))

    async def GetSession(self, request: session_pb2.GetSessionRequest, context: Context) -> session_pb2.Session:
        user_id = access.user()
        session_id = required_uuid("session_id", request.session_id)
        return convert.sessions.to_proto(await self._sessions.get(user_id, session_id))

    async def ListSessions(
        self, request: session_pb2.ListSessionsRequest, context: Context
    ) -> session_pb2.ListSessionsResponse:
        user_id = access.user()
        page = convert.sessions.listing(user_id).page(request, self._budget(), convert.sessions.to_proto)
        await self._sessions.page(user_id, page)
        return session_pb2.ListSessionsResponse(sessions=page.messages, next_page_token=page.next_page_token)

    async def UpdateSession(self, request: session_pb2.UpdateSessionRequest, context: Context) -> session_pb2.Session:
        user_id = access.user()
        edit = convert.sessions.edit(request)
        return convert.sessions.to_proto(await self._sessions.update(user_id, edit.id, edit.changes, edit.etag))

    async def DeleteSession(self, request: session_pb2.DeleteSessionRequest, context: Context) -> empty_pb2.Empty:
        user_id = access.user()
        deletion = convert.sessions.deletion(request)
        await self._sessions.delete(user_id, deletion.session_id, force=deletion.force, etag=deletion.etag)
        return EMPTY


class WorkspaceServicer(workspace_pb2_grpc.WorkspaceServiceServicer):
    def __init__(self, workspace: WorkspaceStore, max_message_bytes: int) -> None:
        self._workspace = workspace
        self._budget = partial(paging.Budget, max_message_bytes)

    async def GetTaskPlan(self, request: workspace_pb2.GetTaskPlanRequest, context: Context) -> workspace_pb2.TaskPlan:
        actor = access.anyone()
        task_id = required_uuid("task_id", request.task_id)
        return convert.workspace.plan_to_proto(await self._workspace.get_plan(actor, task_id))

    async def SetTaskPlan(self, request: workspace_pb2.SetTaskPlanRequest, context: Context) -> workspace_pb2.TaskPlan:
        actor = access.anyone(request.lease_id)
        write = convert.workspace.plan_write(request, by_worker=actor.is_worker)
        plan = await self._workspace.set_plan(actor, write.task_id, write.steps, write.etag)
        return convert.workspace.plan_to_proto(plan)

    async def UpdatePlanStep(
        self, request: workspace_pb2.UpdatePlanStepRequest, context: Context
    ) -> workspace_pb2.TaskPlan:
        actor = access.anyone(request.lease_id)
        step = convert.workspace.step_update(request, by_worker=actor.is_worker)
        plan = await self._workspace.update_step(actor, step.task_id, step.step_id, step.status, step.output, step.etag)
        return convert.workspace.plan_to_proto(plan)

    async def GetTaskContext(
        self, request: workspace_pb2.GetTaskContextRequest, context: Context
    ) -> workspace_pb2.TaskContext:
        actor = access.anyone()
        task_id = required_uuid("task_id", request.task_id)
        return convert.workspace.context_to_proto(await self._workspace.get_context(actor, task_id))

    async def PatchTaskContext(
        self, request: workspace_pb2.PatchTaskContextRequest, context: Context
    ) -> workspace_pb2.TaskContext:
        actor = access.anyone(request.lease_id)
        change = convert.workspace.context_change(request, by_worker=actor.is_worker)
        patched = await self._workspace.patch_context(actor, change.task_id, change.patch)
        return convert.workspace.context_to_proto(patched)

    async def GetTaskMemory(
        self, request: workspace_pb2.GetTaskMemoryRequest, context: Context
    ) -> workspace_pb2.TaskMemory:
        actor = access.anyone()
        task_id = required_uuid("task_id", request.task_id)
        return convert.workspace.memory_to_proto(await self._workspace.get_memory(actor, task_id))

    async def PutTaskMemory(
        self, request: workspace_pb2.PutTaskMemoryRequest, context: Context
    ) -> workspace_pb2.TaskMemory:
        actor = access.anyone(request.lease_id)
        write = convert.workspace.memory_write(request, by_worker=actor.is_worker)
        return convert.workspace.memory_to_proto(await self._workspace.put_memory(actor, write.memory, write.etag))

    async def SearchTaskMemories(
        self, request: workspace_pb2.SearchTaskMemoriesRequest, context: Context
    ) -> workspace_pb2.SearchTaskMemoriesResponse:
        user_id = access.user()
        search = convert.workspace.search(request, user_id)
        page = convert.workspace.search_page(search, request, self._budget())
        await self._workspace.search_memories(user_id, search.where, page)
        return workspace_pb2.SearchTaskMemoriesResponse(results=page.messages, next_page_token=page.next_page_token)


class ArtifactServicer(artifact_pb2_grpc.ArtifactServiceServicer):
    def __init__(self, artifacts: ArtifactStore, max_bytes: int, max_message_bytes: int) -> None:
        self._artifacts = artifacts
        self._max_bytes = max_bytes
        self._budget = partial(paging.Budget, max_message_bytes)

    async def CreateArtifact(
        self, request_iterator: AsyncIterator[artifact_pb2.CreateArtifactRequest], context: Context
    ) -> artifact_pb2.Artifact:
        header = await convert.artifacts.header(request_iterator)
        actor = access.anyone(header.lease_id)
        upload = convert.artifacts.upload(header, by_worker=actor.is_worker, max_bytes=self._max_bytes)
        new = upload.artifact
        existing = await self._artifacts.prepare(actor, new, upload.key)
        if existing is not None:
            return convert.artifacts.to_proto(existing)
        # Nothing is visible until the row commits; a failure or a cut-off stream discards
        # the staged bytes when this block exits.
        async with self._artifacts.blobs.stage() as staged:
            async for chunk in convert.artifacts.chunks(request_iterator, new.size_bytes):
                await staged.write(chunk)
            convert.artifacts.verify(new, staged.size, staged.hexdigest())
            return convert.artifacts.to_proto(await self._artifacts.create(actor, new, upload.key, staged))

    async def DownloadArtifact(
        self, request: artifact_pb2.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[artifact_pb2.DownloadArtifactResponse]:
        actor = access.anyone()
        download = convert.artifacts.download(request)
        artifact = await self._artifacts.get(actor, download.artifact_id)
        convert.artifacts.check_offset(artifact, download.offset)
        yield artifact_pb2.DownloadArtifactResponse(artifact=convert.artifacts.to_proto(artifact))
        async for chunk in self._artifacts.blobs.open(artifact.storage_uri, download.offset, arts.DOWNLOAD_CHUNK_BYTES):
            yield artifact_pb2.DownloadArtifactResponse(chunk=chunk)

    async def GetArtifact(self, request: artifact_pb2.GetArtifactRequest, context: Context) -> artifact_pb2.Artifact:
        actor = access.anyone()
        artifact_id = required_uuid("artifact_id", request.artifact_id)
        return convert.artifacts.to_proto(await self._artifacts.get(actor, artifact_id))

    async def ListArtifacts(
        self, request: artifact_pb2.ListArtifactsRequest, context: Context
    ) -> artifact_pb2.ListArtifactsResponse:
        actor = access.anyone()
        listing = convert.artifacts.listing(request, actor.user_id)
        page = listing.keyset.page(request, self._budget(), convert.artifacts.to_proto)
        await self._artifacts.page(actor, listing.where, page)
        return artifact_pb2.ListArtifactsResponse(artifacts=page.messages, next_page_token=page.next_page_token)

    async def UpdateArtifact(
        self, request: artifact_pb2.UpdateArtifactRequest, context: Context
    ) -> artifact_pb2.Artifact:
        actor = access.anyone(request.lease_id)
        edit = convert.artifacts.edit(request, by_worker=actor.is_worker)
        return convert.artifacts.to_proto(await self._artifacts.update(actor, edit.id, edit.changes, edit.etag))

    async def DeleteArtifact(self, request: artifact_pb2.DeleteArtifactRequest, context: Context) -> empty_pb2.Empty:
        actor = access.anyone(request.lease_id)
        target = convert.artifacts.deletion(request, by_worker=actor.is_worker)
        await self._artifacts.delete(actor, target.id, target.etag)
        return EMPTY


class ScheduleServicer(schedule_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, schedules: ScheduleStore, references: References, max_message_bytes: int) -> None:
        self._schedules = schedules
        self._references = references
        self._budget = partial(paging.Budget, max_message_bytes)

    async def CreateSchedule(
        self, request: schedule_pb2.CreateScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        creation = convert.schedules.creation(request, access.user(), datetime.now(UTC))
        await self._references.check_command(creation.schedule.command)
        schedule = await self._schedules.create(creation.schedule, creation.first_fire_at, creation.key)
        return convert.schedules.to_proto(schedule)

    async def GetSchedule(self, request: schedule_pb2.GetScheduleRequest, context: Context) -> schedule_pb2.Schedule:
        user_id = access.user()
        schedule_id = required_uuid("schedule_id", request.schedule_id)
        return convert.schedules.to_proto(await self._schedules.get(user_id, schedule_id))

    async def ListSchedules(
        self, request: schedule_pb2.ListSchedulesRequest, context: Context
    ) -> schedule_pb2.ListSchedulesResponse:
        user_id = access.user()
        page = convert.schedules.listing(user_id).page(request, self._budget(), convert.schedules.to_proto)
        await self._schedules.page(user_id, page)
        return schedule_pb2.ListSchedulesResponse(schedules=page.messages, next_page_token=page.next_page_token)

    async def PauseSchedule(
        self, request: schedule_pb2.PauseScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        user_id = access.user()
        target = convert.schedules.target(request.schedule_id, request.etag)
        return convert.schedules.to_proto(
            await self._schedules.set_state(user_id, target.id, State.PAUSED, target.etag)
        )

    async def ResumeSchedule(
        self, request: schedule_pb2.ResumeScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        user_id = access.user()
        target = convert.schedules.target(request.schedule_id, request.etag)
        return convert.schedules.to_proto(
            await self._schedules.set_state(user_id, target.id, State.ACTIVE, target.etag)
        )

    async def DeleteSchedule(self, request: schedule_pb2.DeleteScheduleRequest, context: Context) -> empty_pb2.Empty:
        user_id = access.user()
        target = convert.schedules.target(request.schedule_id, request.etag)
        await self._schedules.delete(user_id, target.id, target.etag)
        return EMPTY
