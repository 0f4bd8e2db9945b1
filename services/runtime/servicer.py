"""Transport: each RPC validates (convert), calls the store or the hub, converts back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from nexus.kit import paging
from nexus.kit.validation import required_uuid
from nexus.runtime.v1 import runtime_pb2, runtime_pb2_grpc, task_pb2
from services.runtime import access, convert
from services.runtime.hub import Hub
from services.runtime.references import References
from services.runtime.store.events import EventLog
from services.runtime.store.tasks import TaskStore
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
        self._budget = partial(paging.Budget, max_message_bytes)
        self._tasks = tasks
        self._workspace = workspace
        self._references = references
        self._log = log
        self._hub = hub

    # -- tasks ------------------------------------------------------------------------------

    async def CreateTask(self, request: runtime_pb2.CreateTaskRequest, context: Context) -> task_pb2.Task:
        creation = convert.tasks.creation(request, access.owner().user_id or "")
        new = creation.task
        await self._references.check_task(new)
        created = await self._tasks.create(new, creation.key, self._workspace.seeder(new.plan, new.variables))
        return convert.tasks.to_proto(created)

    async def GetTask(self, request: runtime_pb2.GetTaskRequest, context: Context) -> task_pb2.Task:
        actor = access.anyone()
        task_id = required_uuid("task_id", request.task_id)
        return convert.tasks.to_proto(await self._tasks.get(actor, task_id))

    async def ListTasks(self, request: runtime_pb2.ListTasksRequest, context: Context) -> runtime_pb2.ListTasksResponse:
        listing = convert.tasks.listing(request, access.owner().user_id or "")
        page = listing.keyset.page(request, self._budget(), convert.tasks.to_proto)
        await self._tasks.page(listing.where, page)
        return runtime_pb2.ListTasksResponse(tasks=page.messages, next_page_token=page.next_page_token)

    async def UpdateTask(self, request: runtime_pb2.UpdateTaskRequest, context: Context) -> task_pb2.Task:
        user_id = access.owner().user_id or ""
        edit = convert.tasks.edit(request)
        return convert.tasks.to_proto(await self._tasks.update(user_id, edit.id, edit.changes, edit.etag))

    async def CancelTask(self, request: runtime_pb2.CancelTaskRequest, context: Context) -> task_pb2.Task:
        user_id = access.owner().user_id or ""
        task_id = required_uuid("task_id", request.task_id)
        note = convert.tasks.note(request.reason)
        return convert.tasks.to_proto(await self._tasks.cancel(user_id, task_id, note))

    # -- events -----------------------------------------------------------------------------

    async def AppendTaskEvents(
        self, request: runtime_pb2.AppendTaskEventsRequest, context: Context
    ) -> runtime_pb2.AppendTaskEventsResponse:
        actor = access.anyone(request.lease_id)
        if actor.is_worker:
            required_uuid("lease_id", request.lease_id)
        append = convert.events.append(request, by_worker=actor.is_worker)
        receipts = await self._log.append(actor, append.task_id, append.events)
        return convert.events.append_response(append.task_id, receipts)

    async def ListTaskEvents(
        self, request: runtime_pb2.ListTaskEventsRequest, context: Context
    ) -> runtime_pb2.ListTaskEventsResponse:
        actor = access.anyone()
        span = convert.events.listing(request)
        page = span.keyset.page(request, self._budget(), convert.events.to_proto)
        await self._tasks.get(actor, span.task_id)  # NOT_FOUND unless the caller may see it
        # The event log's own read (raw psycopg), not a SQLAlchemy page read.
        page.extend(await self._log.read(span.task_id, span.after(page.after), page.limit, span.before_seq))
        return runtime_pb2.ListTaskEventsResponse(events=page.messages, next_page_token=page.next_page_token)

    async def StreamTaskEvents(
        self, request: runtime_pb2.StreamTaskEventsRequest, context: Context
    ) -> AsyncIterator[task_pb2.TaskEvent]:
        actor = access.anyone()
        start = convert.events.follow(request)
        async for event in self._hub.follow(actor, start.task_id, start.after_seq):
            yield convert.events.to_proto(event)

    # -- workers ----------------------------------------------------------------------------

    async def ClaimTasks(
        self, request: runtime_pb2.ClaimTasksRequest, context: Context
    ) -> runtime_pb2.ClaimTasksResponse:
        actor = access.worker()
        claim = convert.tasks.claim(request)
        budget = self._budget()
        claimed = await self._tasks.claim(
            actor.worker or "",
            claim.agent_ids,
            claim.limit,
            claim.lease_s,
            accept=lambda task: budget.take(convert.tasks.claimed_size(task)),
        )
        return convert.tasks.claimed_to_proto(claimed)

    async def RenewLease(self, request: runtime_pb2.RenewLeaseRequest, context: Context) -> task_pb2.Lease:
        actor = access.worker()
        renewal = convert.tasks.renewal(request)
        expires = await self._tasks.renew(actor.worker or "", renewal.task_id, renewal.lease_id, renewal.lease_s)
        return convert.tasks.lease_to_proto(renewal.task_id, renewal.lease_id, expires)

    async def FinishTask(self, request: runtime_pb2.FinishTaskRequest, context: Context) -> task_pb2.Task:
        held = convert.tasks.held(request.task_id, request.lease_id)
        actor, result = access.worker(held.lease_id), convert.tasks.result(request)
        return convert.tasks.to_proto(await self._tasks.finish(actor, held.task_id, result))

    async def FailTask(self, request: runtime_pb2.FailTaskRequest, context: Context) -> task_pb2.Task:
        held = convert.tasks.held(request.task_id, request.lease_id)
        actor, error = access.worker(held.lease_id), convert.tasks.task_error(request)
        return convert.tasks.to_proto(await self._tasks.fail(actor, held.task_id, error))

    async def RequestInput(self, request: runtime_pb2.RequestInputRequest, context: Context) -> task_pb2.Task:
        held = convert.tasks.held(request.task_id, request.lease_id)
        actor = access.worker(held.lease_id)
        question = convert.events.single_event("question", request.question, by_worker=True)
        return convert.tasks.to_proto(await self._tasks.request_input(actor, held.task_id, question))

    async def ProvideInput(self, request: runtime_pb2.ProvideInputRequest, context: Context) -> task_pb2.Task:
        actor = access.owner()
        task_id = required_uuid("task_id", request.task_id)
        answer = convert.events.single_event("answer", request.answer, by_worker=False)
        return convert.tasks.to_proto(await self._tasks.provide_input(actor, task_id, answer))
