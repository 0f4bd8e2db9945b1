"""Transport of the workspace services: sessions, plan/context/memory, artifacts, schedules.
Each RPC: who is calling (access) → validate (convert) → store → convert back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf import empty_pb2

from nexus.kit import paging
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
from services.runtime import access
from services.runtime import artifact_convert as ac
from services.runtime import schedule_convert as sc
from services.runtime import session_convert as ss
from services.runtime import workspace_convert as wc
from services.runtime.domain import artifacts as arts
from services.runtime.domain.schedules import State
from services.runtime.references import References
from services.runtime.store.artifacts import ArtifactStore, artifact_cursor
from services.runtime.store.schedules import ScheduleStore, schedule_cursor
from services.runtime.store.sessions import SessionStore, session_cursor
from services.runtime.store.workspace import WorkspaceStore, hit_cursor

Context = Any
EMPTY = empty_pb2.Empty()


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    def __init__(self, sessions: SessionStore, max_message_bytes: int) -> None:
        self._sessions = sessions
        self._max_message_bytes = max_message_bytes

    async def CreateSession(self, request: session_pb2.CreateSessionRequest, context: Context) -> session_pb2.Session:
        new = ss.new_session(request, access.user())
        return ss.session_to_proto(await self._sessions.create(new))

    async def GetSession(self, request: session_pb2.GetSessionRequest, context: Context) -> session_pb2.Session:
        user_id = access.user()
        session_id = ss.required_id("session_id", request.session_id)
        return ss.session_to_proto(await self._sessions.get(user_id, session_id))

    async def ListSessions(
        self, request: session_pb2.ListSessionsRequest, context: Context
    ) -> session_pb2.ListSessionsResponse:
        user_id = access.user()
        limit, cursor = ss.owned_page("sessions", request.page_size, request.page_token, user_id)
        sessions, next_cursor = await self._sessions.page(user_id, limit, cursor)
        page, next_cursor = paging.fit(
            sessions,
            ss.session_to_proto,
            paging.Budget(self._max_message_bytes),
            next_cursor=next_cursor,
            cursor_of=session_cursor,
        )
        return session_pb2.ListSessionsResponse(
            sessions=page, next_page_token=ss.owned_next_token("sessions", user_id, next_cursor)
        )

    async def UpdateSession(self, request: session_pb2.UpdateSessionRequest, context: Context) -> session_pb2.Session:
        user_id = access.user()
        session_id, changes, etag = ss.session_changes(request)
        return ss.session_to_proto(await self._sessions.update(user_id, session_id, changes, etag))

    async def DeleteSession(self, request: session_pb2.DeleteSessionRequest, context: Context) -> empty_pb2.Empty:
        user_id = access.user()
        session_id, force, etag = ss.delete(request)
        await self._sessions.delete(user_id, session_id, force=force, etag=etag)
        return EMPTY


class WorkspaceServicer(workspace_pb2_grpc.WorkspaceServiceServicer):
    def __init__(self, workspace: WorkspaceStore, max_message_bytes: int) -> None:
        self._workspace = workspace
        self._max_message_bytes = max_message_bytes

    async def GetTaskPlan(self, request: workspace_pb2.GetTaskPlanRequest, context: Context) -> workspace_pb2.TaskPlan:
        actor = access.anyone()
        task_id = ss.required_id("task_id", request.task_id)
        return wc.plan_to_proto(await self._workspace.get_plan(actor, task_id))

    async def SetTaskPlan(self, request: workspace_pb2.SetTaskPlanRequest, context: Context) -> workspace_pb2.TaskPlan:
        actor = access.anyone(request.lease_id)
        task_id, steps, etag = wc.set_plan(request, by_worker=actor.is_worker)
        return wc.plan_to_proto(await self._workspace.set_plan(actor, task_id, steps, etag))

    async def UpdatePlanStep(
        self, request: workspace_pb2.UpdatePlanStepRequest, context: Context
    ) -> workspace_pb2.TaskPlan:
        actor = access.anyone(request.lease_id)
        task_id, step_id, status, output, etag = wc.update_step(request, by_worker=actor.is_worker)
        return wc.plan_to_proto(await self._workspace.update_step(actor, task_id, step_id, status, output, etag))

    async def GetTaskContext(
        self, request: workspace_pb2.GetTaskContextRequest, context: Context
    ) -> workspace_pb2.TaskContext:
        actor = access.anyone()
        task_id = ss.required_id("task_id", request.task_id)
        return wc.context_to_proto(await self._workspace.get_context(actor, task_id))

    async def PatchTaskContext(
        self, request: workspace_pb2.PatchTaskContextRequest, context: Context
    ) -> workspace_pb2.TaskContext:
        actor = access.anyone(request.lease_id)
        task_id, patch = wc.context_patch(request, by_worker=actor.is_worker)
        return wc.context_to_proto(await self._workspace.patch_context(actor, task_id, patch))

    async def GetTaskMemory(
        self, request: workspace_pb2.GetTaskMemoryRequest, context: Context
    ) -> workspace_pb2.TaskMemory:
        actor = access.anyone()
        task_id = ss.required_id("task_id", request.task_id)
        return wc.memory_to_proto(await self._workspace.get_memory(actor, task_id))

    async def PutTaskMemory(
        self, request: workspace_pb2.PutTaskMemoryRequest, context: Context
    ) -> workspace_pb2.TaskMemory:
        actor = access.anyone(request.lease_id)
        memory, etag = wc.put_memory(request, by_worker=actor.is_worker)
        return wc.memory_to_proto(await self._workspace.put_memory(actor, memory, etag))

    async def SearchTaskMemories(
        self, request: workspace_pb2.SearchTaskMemoriesRequest, context: Context
    ) -> workspace_pb2.SearchTaskMemoriesResponse:
        user_id = access.user()
        query, limit, cursor = wc.search(request, user_id)
        hits, next_cursor = await self._workspace.search_memories(user_id, query, limit, cursor)
        results, next_cursor = paging.fit(
            hits,
            wc.search_result,
            paging.Budget(self._max_message_bytes),
            next_cursor=next_cursor,
            cursor_of=hit_cursor,
        )
        return workspace_pb2.SearchTaskMemoriesResponse(
            results=results, next_page_token=wc.search_token(user_id, query, next_cursor)
        )


class ArtifactServicer(artifact_pb2_grpc.ArtifactServiceServicer):
    def __init__(self, artifacts: ArtifactStore, max_bytes: int, max_message_bytes: int) -> None:
        self._artifacts = artifacts
        self._max_bytes = max_bytes
        self._max_message_bytes = max_message_bytes

    async def CreateArtifact(
        self, request_iterator: AsyncIterator[artifact_pb2.CreateArtifactRequest], context: Context
    ) -> artifact_pb2.Artifact:
        header = await ac.header(request_iterator)
        actor = access.anyone(header.lease_id)
        new = ac.new_artifact(header, by_worker=actor.is_worker, max_bytes=self._max_bytes)
        existing = await self._artifacts.prepare(actor, new)
        if existing is not None:
            return ac.artifact_to_proto(existing)
        # Nothing is visible until the row commits; a failure or a cut-off stream discards
        # the staged bytes when this block exits.
        async with self._artifacts.blobs.stage() as staged:
            async for chunk in ac.chunks(request_iterator, new.size_bytes):
                await staged.write(chunk)
            ac.verify(new, staged.size, staged.hexdigest())
            return ac.artifact_to_proto(await self._artifacts.create(actor, new, staged))

    async def DownloadArtifact(
        self, request: artifact_pb2.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[artifact_pb2.DownloadArtifactResponse]:
        actor = access.anyone()
        artifact_id, offset = ac.download(request)
        artifact = await self._artifacts.get(actor, artifact_id)
        ac.check_offset(artifact, offset)
        yield artifact_pb2.DownloadArtifactResponse(artifact=ac.artifact_to_proto(artifact))
        async for chunk in self._artifacts.blobs.open(artifact.storage_uri, offset, arts.DOWNLOAD_CHUNK_BYTES):
            yield artifact_pb2.DownloadArtifactResponse(chunk=chunk)

    async def GetArtifact(self, request: artifact_pb2.GetArtifactRequest, context: Context) -> artifact_pb2.Artifact:
        actor = access.anyone()
        artifact_id = ss.required_id("artifact_id", request.artifact_id)
        return ac.artifact_to_proto(await self._artifacts.get(actor, artifact_id))

    async def ListArtifacts(
        self, request: artifact_pb2.ListArtifactsRequest, context: Context
    ) -> artifact_pb2.ListArtifactsResponse:
        actor = access.anyone()
        where, limit, cursor = ac.artifact_filter(request, actor.user_id)
        items, next_cursor = await self._artifacts.page(actor, where, limit, cursor)
        page, next_cursor = paging.fit(
            items,
            ac.artifact_to_proto,
            paging.Budget(self._max_message_bytes),
            next_cursor=next_cursor,
            cursor_of=artifact_cursor,
        )
        return artifact_pb2.ListArtifactsResponse(artifacts=page, next_page_token=ac.next_token(where, next_cursor))

    async def UpdateArtifact(
        self, request: artifact_pb2.UpdateArtifactRequest, context: Context
    ) -> artifact_pb2.Artifact:
        actor = access.anyone(request.lease_id)
        artifact_id, changes, etag = ac.artifact_changes(request, by_worker=actor.is_worker)
        return ac.artifact_to_proto(await self._artifacts.update(actor, artifact_id, changes, etag))

    async def DeleteArtifact(self, request: artifact_pb2.DeleteArtifactRequest, context: Context) -> empty_pb2.Empty:
        actor = access.anyone(request.lease_id)
        artifact_id, etag = ac.delete(request, by_worker=actor.is_worker)
        await self._artifacts.delete(actor, artifact_id, etag)
        return EMPTY


class ScheduleServicer(schedule_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, schedules: ScheduleStore, references: References, max_message_bytes: int) -> None:
        self._schedules = schedules
        self._references = references
        self._max_message_bytes = max_message_bytes

    async def CreateSchedule(
        self, request: schedule_pb2.CreateScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        new, first = sc.new_schedule(request, access.user(), datetime.now(UTC))
        await self._references.check_command(new.command)
        return sc.schedule_to_proto(await self._schedules.create(new, first))

    async def GetSchedule(self, request: schedule_pb2.GetScheduleRequest, context: Context) -> schedule_pb2.Schedule:
        user_id = access.user()
        schedule_id = ss.required_id("schedule_id", request.schedule_id)
        return sc.schedule_to_proto(await self._schedules.get(user_id, schedule_id))

    async def ListSchedules(
        self, request: schedule_pb2.ListSchedulesRequest, context: Context
    ) -> schedule_pb2.ListSchedulesResponse:
        user_id = access.user()
        limit, cursor = ss.owned_page("schedules", request.page_size, request.page_token, user_id)
        items, next_cursor = await self._schedules.page(user_id, limit, cursor)
        page, next_cursor = paging.fit(
            items,
            sc.schedule_to_proto,
            paging.Budget(self._max_message_bytes),
            next_cursor=next_cursor,
            cursor_of=schedule_cursor,
        )
        return schedule_pb2.ListSchedulesResponse(
            schedules=page, next_page_token=ss.owned_next_token("schedules", user_id, next_cursor)
        )

    async def PauseSchedule(
        self, request: schedule_pb2.PauseScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        user_id = access.user()
        schedule_id, etag = sc.target(request.schedule_id, request.etag)
        return sc.schedule_to_proto(await self._schedules.set_state(user_id, schedule_id, State.PAUSED, etag))

    async def ResumeSchedule(
        self, request: schedule_pb2.ResumeScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        user_id = access.user()
        schedule_id, etag = sc.target(request.schedule_id, request.etag)
        return sc.schedule_to_proto(await self._schedules.set_state(user_id, schedule_id, State.ACTIVE, etag))

    async def DeleteSchedule(self, request: schedule_pb2.DeleteScheduleRequest, context: Context) -> empty_pb2.Empty:
        user_id = access.user()
        schedule_id, etag = sc.target(request.schedule_id, request.etag)
        await self._schedules.delete(user_id, schedule_id, etag)
        return EMPTY
