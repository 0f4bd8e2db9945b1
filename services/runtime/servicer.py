"""Transport: each RPC validates (convert), calls the store or the hub, converts back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from nexus.kit import paging
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc, task_pb2
from services.runtime import access, convert
from services.runtime.hub import Hub
from services.runtime.references import References
from services.runtime.store.events import EventLog
from services.runtime.store.tasks import TaskStore, task_cursor
from services.runtime.store.workspace import WorkspaceStore

Context = Any


class RuntimeServicer(runtime_pb2_grpc.RuntimeServiceServicer):
    def __init__(
        self,
        tasks: TaskStore,
        log: EventLog,
        hub: Hub,
        references: References,
        workspace: WorkspaceStore,
        max_message_bytes: int,
    ) -> None:
        self._max_message_bytes = max_message_bytes
        self._tasks = tasks
        self._workspace = workspace
        self._references = references
        self._log = log
        self._hub = hub

    # -- tasks ------------------------------------------------------------------------------

    async def CreateTask(self, request: runtime_pb2.CreateTaskRequest, context: Context) -> task_pb2.Task:
        new = convert.new_task(request, access.owner().user_id or "")
        await self._references.check_task(new)
        created = await self._tasks.create(new, self._workspace.seeder(new.plan, new.variables))
        return convert.task_to_proto(created)

    async def GetTask(self, request: runtime_pb2.GetTaskRequest, context: Context) -> task_pb2.Task:
        actor = access.anyone()
        return convert.task_to_proto(await self._tasks.get(actor, convert.task_id(request.task_id)))

    async def ListTasks(self, request: runtime_pb2.ListTasksRequest, context: Context) -> runtime_pb2.ListTasksResponse:
        where, limit, cursor = convert.task_filter(request, access.owner().user_id or "")
        tasks, next_cursor = await self._tasks.page(where, limit, cursor)
        page, next_cursor = paging.fit(
            tasks, convert.task_to_proto, self._budget(), next_cursor=next_cursor, cursor_of=task_cursor
        )
        return runtime_pb2.ListTasksResponse(tasks=page, next_page_token=convert.next_task_token(where, next_cursor))

    async def UpdateTask(self, request: runtime_pb2.UpdateTaskRequest, context: Context) -> task_pb2.Task:
        user_id = access.owner().user_id or ""
        task_id, changes, etag = convert.task_changes(request)
        return convert.task_to_proto(await self._tasks.update(user_id, task_id, changes, etag))

    async def CancelTask(self, request: runtime_pb2.CancelTaskRequest, context: Context) -> task_pb2.Task:
        user_id = access.owner().user_id or ""
        task_id, note = convert.task_id(request.task_id), convert.note(request.reason)
        return convert.task_to_proto(await self._tasks.cancel(user_id, task_id, note))

    # -- events -----------------------------------------------------------------------------

    async def AppendTaskEvents(
        self, request: runtime_pb2.AppendTaskEventsRequest, context: Context
    ) -> runtime_pb2.AppendTaskEventsResponse:
        actor = access.anyone(request.lease_id)
        if actor.is_worker:
            convert.lease_id(request.lease_id)
        task_id, events = convert.append_request(request, by_worker=actor.is_worker)
        return convert.append_response(task_id, await self._log.append(actor, task_id, events))

    async def ListTaskEvents(
        self, request: runtime_pb2.ListTaskEventsRequest, context: Context
    ) -> runtime_pb2.ListTaskEventsResponse:
        actor = access.anyone()
        task_id, after, before, limit = convert.event_range(request)
        await self._tasks.get(actor, task_id)  # NOT_FOUND unless the caller may see it
        events = await self._log.read(task_id, after, limit, before)
        # A full page may have more after it; one the budget ended early surely has.
        more = events[-1] if len(events) == limit else None
        page, last = paging.fit(events, convert.event_to_proto, self._budget(), next_cursor=more, cursor_of=lambda e: e)
        return runtime_pb2.ListTaskEventsResponse(
            events=page, next_page_token=convert.next_event_token(request, task_id, last)
        )

    async def StreamTaskEvents(
        self, request: runtime_pb2.StreamTaskEventsRequest, context: Context
    ) -> AsyncIterator[task_pb2.TaskEvent]:
        actor = access.anyone()
        task_id, after_seq = convert.stream_request(request)
        async for event in self._hub.follow(actor, task_id, after_seq):
            yield convert.event_to_proto(event)

    # -- workers ----------------------------------------------------------------------------

    async def ClaimTasks(
        self, request: runtime_pb2.ClaimTasksRequest, context: Context
    ) -> runtime_pb2.ClaimTasksResponse:
        actor = access.worker()
        agents, limit, seconds = convert.claim(request)
        budget = self._budget()
        claimed = await self._tasks.claim(
            actor.worker or "", agents, limit, seconds, accept=lambda task: budget.take(convert.claimed_size(task))
        )
        return convert.claimed_to_proto(claimed)

    def _budget(self) -> paging.Budget:
        return paging.Budget(self._max_message_bytes)

    async def RenewLease(self, request: runtime_pb2.RenewLeaseRequest, context: Context) -> task_pb2.Lease:
        actor = access.worker()
        task_id, lease_id, seconds = convert.renew(request)
        expires = await self._tasks.renew(actor.worker or "", task_id, lease_id, seconds)
        return convert.lease(task_id, lease_id, expires)

    async def FinishTask(self, request: runtime_pb2.FinishTaskRequest, context: Context) -> task_pb2.Task:
        task_id, lease_id = convert.drive(request.task_id, request.lease_id)
        actor, result = access.worker(lease_id), convert.result(request)
        return convert.task_to_proto(await self._tasks.finish(actor, task_id, result))

    async def FailTask(self, request: runtime_pb2.FailTaskRequest, context: Context) -> task_pb2.Task:
        task_id, lease_id = convert.drive(request.task_id, request.lease_id)
        actor, error = access.worker(lease_id), convert.task_error(request)
        return convert.task_to_proto(await self._tasks.fail(actor, task_id, error))

    async def RequestInput(self, request: runtime_pb2.RequestInputRequest, context: Context) -> task_pb2.Task:
        task_id, lease_id = convert.drive(request.task_id, request.lease_id)
        actor = access.worker(lease_id)
        question = convert.single_event("question", request.question, by_worker=True)
        return convert.task_to_proto(await self._tasks.request_input(actor, task_id, question))

    async def ProvideInput(self, request: runtime_pb2.ProvideInputRequest, context: Context) -> task_pb2.Task:
        actor = access.owner()
        task_id = convert.task_id(request.task_id)
        answer = convert.single_event("answer", request.answer, by_worker=False)
        return convert.task_to_proto(await self._tasks.provide_input(actor, task_id, answer))
